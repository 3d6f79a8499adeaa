package jobs

// HoldDeferred keeps c's flusher from inserting deferred jobs while Run
// runs, so that a test knows they can reach the database only through the
// insert Run makes at shutdown. Call it before Run.
func HoldDeferred(c *Client) { c.holdDeferred = true }

// Deferring reports whether Run's flusher takes deferred jobs (Run runs).
func Deferring(c *Client) bool {
	c.deferMu.Lock()
	defer c.deferMu.Unlock()
	return c.deferOn
}
