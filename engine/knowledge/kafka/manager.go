package kafka

import (
	"context"
	"log/slog"
	"maps"
	"reflect"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/troupehq/troupe/spec"
)

// Manager runs one consumer per knowledge base with a kafka source, in this
// process: replicas running the same bases join the same consumer groups,
// which split the partitions between them. Configure it with each
// snapshot's knowledge bases; Run owns the consumers.
type Manager struct {
	index  Index
	log    *slog.Logger
	extra  []kgo.Opt
	change chan struct{}

	mu   sync.Mutex
	want map[string]*spec.Knowledge // by name, bases with a kafka source
	live map[string]*Consumer       // running, by name
}

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	Index  Index
	Logger *slog.Logger
	// ClientOptions add to every consumer's client options.
	ClientOptions []kgo.Opt
}

// NewManager returns a manager with nothing configured.
func NewManager(o ManagerOptions) *Manager {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{index: o.Index, log: o.Logger, extra: o.ClientOptions, change: make(chan struct{}, 1),
		want: map[string]*spec.Knowledge{}, live: map[string]*Consumer{}}
}

// Configure sets the knowledge bases; Run starts, restarts (when a base's
// kafka block changed) and stops consumers to match.
func (m *Manager) Configure(specs []*spec.Knowledge) {
	want := map[string]*spec.Knowledge{}
	for _, k := range specs {
		if k.Kafka != nil {
			want[k.Name] = k
		}
	}
	m.mu.Lock()
	m.want = want
	m.mu.Unlock()
	select {
	case m.change <- struct{}{}:
	default:
	}
}

// Lag returns each running consumer's lag, by knowledge base.
func (m *Manager) Lag() map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int64, len(m.live))
	for name, c := range m.live {
		out[name] = c.Lag()
	}
	return out
}

// restartDelay is how long a consumer that failed waits before it starts
// again (a broker down, a dead-letter topic that cannot be written).
const restartDelay = 5 * time.Second

// Run reconciles consumers with the configuration until ctx ends, then
// stops them all and waits for them.
func (m *Manager) Run(ctx context.Context) error {
	type running struct {
		spec   *spec.Knowledge
		cancel context.CancelFunc
		done   chan struct{}
	}
	runs := map[string]*running{}
	stop := func(name string) {
		r := runs[name]
		r.cancel()
		<-r.done
		delete(runs, name)
		m.mu.Lock()
		delete(m.live, name)
		m.mu.Unlock()
	}
	defer func() {
		for name := range runs {
			stop(name)
		}
	}()
	for {
		m.mu.Lock()
		want := maps.Clone(m.want)
		m.mu.Unlock()
		for name, r := range runs {
			// Only the kafka block matters to a consumer: restarting it
			// for another edit of its base (chunking, search, a
			// description) would leave and rejoin the group, rebalancing
			// every replica's partitions, for nothing.
			if k := want[name]; k == nil || !reflect.DeepEqual(*k.Kafka, *r.spec.Kafka) {
				stop(name)
			}
		}
		for name, k := range want {
			if runs[name] != nil {
				continue
			}
			cctx, cancel := context.WithCancel(ctx)
			r := &running{spec: k, cancel: cancel, done: make(chan struct{})}
			runs[name] = r
			go func() {
				defer close(r.done)
				m.consume(cctx, k)
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.change:
		}
	}
}

// consume runs a knowledge base's consumer until ctx ends, starting it
// again after a failure.
func (m *Manager) consume(ctx context.Context, k *spec.Knowledge) {
	log := m.log.With("knowledge", k.Name)
	for {
		c, err := New(Options{Knowledge: k.Name, Config: *k.Kafka, Index: m.index, Logger: m.log, ClientOptions: m.extra})
		if err == nil {
			m.mu.Lock()
			m.live[k.Name] = c
			m.mu.Unlock()
			err = c.Run(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		log.Error("kafka source stopped; starting it again", "err", err, "in", restartDelay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(restartDelay):
		}
	}
}
