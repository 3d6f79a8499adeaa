package kafka

// Live returns the consumer running for a knowledge base, nil when none is,
// so that a test can tell a restart (another consumer) from none.
func (m *Manager) Live(name string) *Consumer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live[name]
}
