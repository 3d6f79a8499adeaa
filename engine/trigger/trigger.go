// Package trigger fires the runs that Trigger documents declare: schedules
// through the job engine's periodic jobs, webhooks through Webhook, and
// "run now" through Fire. Every firing starts a background run of the
// trigger's target (jobs.RunQueue) and is recorded with its trigger.
//
// Exactly once per tick: every replica adds a periodic job per schedule to
// its job client, and only the elected leader inserts them; the tick job
// queues a fire job unique per (trigger, tick), kept while River keeps the
// completed job, so two leaders around a leadership change fire a tick
// once. Intervals (every:) tick at multiples of the interval since the Unix
// epoch, so that every replica agrees on the ticks.
//
// Catch-up: with catch_up: skip (the default) ticks missed while no
// replica ran are dropped and the trigger fires at its next tick. With
// catch_up: once, a process that starts serving the trigger and finds a
// tick missed since its last firing (recorded in the store) fires it once,
// for the first missed tick (unique like any tick, so replicas starting
// together fire it once); a trigger that never fired has nothing to catch
// up.
package trigger

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/jobs"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/spec/expr"
)

// Errors of Fire and Webhook.
var (
	// ErrNotFound: no serving trigger has that name or webhook path.
	ErrNotFound = errors.New("trigger not found")
	// ErrSignature: a webhook call's signature is missing or wrong.
	ErrSignature = errors.New("missing or invalid webhook signature")
)

// Submitter queues background runs (jobs.RunQueue).
type Submitter interface {
	Submit(ctx context.Context, p session.Params) (*session.Run, error)
}

var _ Submitter = (*jobs.RunQueue)(nil)

// Store records firings (store.DB). Safe for concurrent use.
type Store interface {
	// RecordFire records that trigger started run runID for the tick
	// scheduled, fired by source (a Source*), and names the trigger on the
	// run.
	RecordFire(ctx context.Context, trigger, runID, source string, scheduled, fired time.Time) error
	// LastFire returns when trigger last fired by its schedule or webhook
	// (not by "run now"); ok is false if never.
	LastFire(ctx context.Context, trigger string) (fired time.Time, ok bool, err error)
}

// How a firing happened, as the store records it.
const (
	SourceSchedule = "schedule" // a tick of its schedule (or its catch-up)
	SourceWebhook  = "webhook"  // a signed call of its webhook
	SourceManual   = "manual"   // "run now" from the API or the console
)

// Snapshots gives the serving snapshot (engine.Engine).
type Snapshots interface {
	Current() *engine.Snapshot
}

var _ Snapshots = (*engine.Engine)(nil)

// Options configure a Service.
type Options struct {
	Snapshots Snapshots
	Jobs      *jobs.Client
	Runs      Submitter
	Store     Store
	Logger    *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Service fires triggers. Its methods are safe for concurrent use.
type Service struct {
	opts Options
	log  *slog.Logger

	mu sync.Mutex
	// scheduled maps each scheduled trigger to its periodic job's id,
	// which changes with the schedule.
	scheduled map[string]string
	// seen are the triggers this process has served, whose catch-up was
	// looked at.
	seen map[string]bool

	refused atomic.Uint64
}

// New returns a service; call Register before the job client runs and
// Reconcile with every snapshot.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{opts: opts, log: opts.Logger, scheduled: map[string]string{}, seen: map[string]bool{}}
}

// TickArgs are the arguments of a schedule's periodic job.
type TickArgs struct {
	Trigger string `json:"trigger"`
}

// Kind names the tick kind.
func (TickArgs) Kind() string { return "trigger_tick" }

// FireArgs are the arguments of one tick's firing: unique per trigger and
// tick.
type FireArgs struct {
	Trigger string `json:"trigger"`
	Tick    string `json:"tick"` // RFC 3339, UTC
}

// Kind names the fire kind.
func (FireArgs) Kind() string { return "trigger_fire" }

// Tick is inserted by the leader at each tick; it queues the tick's Fire.
var Tick = jobs.Kind[TickArgs]{MaxAttempts: 3, Timeout: 30 * time.Second}

// Fire starts the run of one tick, at most once: it is unique, completed
// jobs included, and never retried (a retry after the run was queued would
// start a second run).
var Fire = jobs.Kind[FireArgs]{MaxAttempts: 1, Timeout: 30 * time.Second, UniqueDone: true}

// Register makes clients built on r run the trigger jobs with s.
func (s *Service) Register(r *jobs.Registry) {
	jobs.Register(r, Tick, func(ctx context.Context, a TickArgs) error {
		tick := jobs.ScheduledAt(ctx)
		if tick.IsZero() {
			tick = s.opts.Now()
		}
		return s.queueTick(ctx, a.Trigger, tick)
	})
	jobs.Register(r, Fire, func(ctx context.Context, a FireArgs) error {
		tick, err := time.Parse(time.RFC3339, a.Tick)
		if err != nil {
			return fmt.Errorf("trigger %s: bad tick %q: %w", a.Trigger, a.Tick, err)
		}
		_, err = s.fire(ctx, a.Trigger, SourceSchedule, tick, nil)
		if errors.Is(err, ErrNotFound) {
			s.log.Info("trigger removed before its tick fired", "trigger", a.Trigger, "tick", a.Tick)
			return nil
		}
		return err
	})
}

// queueTick queues the firing of trigger for tick, once however often it is
// called for that tick. Ticks are whole seconds.
func (s *Service) queueTick(ctx context.Context, name string, tick time.Time) error {
	_, err := jobs.Enqueue(ctx, s.opts.Jobs, Fire, FireArgs{Trigger: name, Tick: tick.UTC().Round(time.Second).Format(time.RFC3339)})
	return err
}

// Triggers returns the serving triggers of snap, sorted by name.
func Triggers(snap *engine.Snapshot) []*spec.Trigger {
	var out []*spec.Trigger
	for _, o := range snap.Objects() {
		if t, ok := o.Doc.(*spec.Trigger); ok && o.Key.Kind == spec.KindTrigger {
			out = append(out, t)
		}
	}
	return out
}

// Lookup returns the serving trigger name.
func Lookup(snap *engine.Snapshot, name string) (*spec.Trigger, bool) {
	o, ok := snap.Object(spec.Key{Kind: spec.KindTrigger, Name: name})
	if !ok {
		return nil, false
	}
	t, ok := o.Doc.(*spec.Trigger)
	return t, ok
}

// ScheduleOf returns the ticks of a trigger's schedule.
func ScheduleOf(s *spec.Schedule) (jobs.Schedule, error) {
	if s.Every > 0 {
		return interval(s.Every.D()), nil
	}
	loc, err := time.LoadLocation(s.Timezone)
	if err != nil {
		return nil, fmt.Errorf("loading time zone %q: %w", s.Timezone, err)
	}
	return spec.CronSchedule(s.Cron, loc)
}

// interval ticks at the multiples of itself since the Unix epoch, so every
// replica computes the same ticks.
type interval time.Duration

func (d interval) Next(after time.Time) time.Time {
	n := time.Duration(d).Nanoseconds()
	ns := after.UnixNano()
	return time.Unix(0, (ns/n+1)*n).In(after.Location())
}

// Next returns the next tick of t after now; false for webhooks.
func Next(t *spec.Trigger, now time.Time) (time.Time, bool) {
	if t.Schedule == nil {
		return time.Time{}, false
	}
	sched, err := ScheduleOf(t.Schedule)
	if err != nil {
		return time.Time{}, false
	}
	return sched.Next(now), true
}

// Reconcile makes the job client's periodic jobs those of snap's
// schedules, and catches up the schedules this process had not served.
func (s *Service) Reconcile(ctx context.Context, snap *engine.Snapshot) {
	want := map[string]*spec.Trigger{}
	for _, t := range Triggers(snap) {
		if t.Schedule != nil {
			want[t.Name] = t
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, id := range s.scheduled {
		t, ok := want[name]
		if !ok || periodicID(t) != id {
			s.opts.Jobs.RemovePeriodic(id)
			delete(s.scheduled, name)
			s.log.Info("trigger schedule removed", "trigger", name)
		}
	}
	for name, t := range want {
		if _, ok := s.scheduled[name]; ok {
			continue
		}
		sched, err := ScheduleOf(t.Schedule)
		if err != nil {
			s.log.Error("trigger schedule not added", "trigger", name, "err", err)
			continue
		}
		id := periodicID(t)
		if err := jobs.AddPeriodic(s.opts.Jobs, id, sched, Tick, TickArgs{Trigger: name}); err != nil {
			s.log.Error("trigger schedule not added", "trigger", name, "err", err)
			continue
		}
		s.scheduled[name] = id
		s.log.Info("trigger schedule added", "trigger", name, "next", sched.Next(s.opts.Now()))
		if !s.seen[name] && t.Schedule.CatchUp == spec.CatchUpOnce {
			if err := s.catchUp(ctx, name, sched); err != nil {
				s.log.Error("trigger catch-up failed", "trigger", name, "err", err)
			}
		}
		s.seen[name] = true
	}
}

// catchUp fires the first tick missed since name last fired, if any.
func (s *Service) catchUp(ctx context.Context, name string, sched jobs.Schedule) error {
	last, ok, err := s.opts.Store.LastFire(ctx, name)
	if err != nil || !ok {
		return err
	}
	missed := sched.Next(last)
	if !missed.Before(s.opts.Now()) {
		return nil
	}
	s.log.Info("trigger catching up a missed tick", "trigger", name, "last_fired", last, "missed", missed)
	return s.queueTick(ctx, name, missed)
}

// periodicID names a schedule's periodic job; it changes with the schedule
// so that an edited schedule replaces the job.
func periodicID(t *spec.Trigger) string {
	s := t.Schedule
	h := sha256.Sum256([]byte(s.Cron + "\x00" + s.Every.String() + "\x00" + s.Timezone))
	return "trigger:" + t.Name + ":" + hex.EncodeToString(h[:6])
}

// Run reconciles with every snapshot the engine publishes until ctx ends.
func (s *Service) Run(ctx context.Context, current *engine.Snapshot, updates <-chan *engine.Snapshot) error {
	s.Reconcile(ctx, current)
	for {
		select {
		case <-ctx.Done():
			return nil
		case snap := <-updates:
			s.Reconcile(ctx, snap)
		}
	}
}

// RunNow fires trigger name at once ("run now"), whatever its kind, as a
// manual firing: the run gets the trigger's message or input (a webhook's
// message as written, there being no request), else a line naming the
// trigger and the time. It does not move the
// schedule's ticks nor count for its catch-up.
func (s *Service) RunNow(ctx context.Context, name string) (*session.Run, error) {
	return s.fire(ctx, name, SourceManual, s.opts.Now(), nil)
}

// fire starts a background run of trigger name's target for tick; body is
// a webhook call's, nil otherwise.
func (s *Service) fire(ctx context.Context, name, source string, tick time.Time, body []byte) (*session.Run, error) {
	t, ok := Lookup(s.opts.Snapshots.Current(), name)
	if !ok {
		return nil, fmt.Errorf("trigger %q: %w", name, ErrNotFound)
	}
	return s.start(ctx, t, source, tick, nil, body)
}

func (s *Service) start(ctx context.Context, t *spec.Trigger, source string, tick time.Time, header http.Header, body []byte) (*session.Run, error) {
	target := t.Target.Key()
	msg, err := message(ctx, t, tick, header, body)
	if err != nil {
		return nil, err
	}
	r, err := s.opts.Runs.Submit(ctx, session.Params{Kind: target.Kind, Name: target.Name, Message: msg, KeepEvents: true})
	if err != nil {
		return nil, fmt.Errorf("trigger %q: starting a run of %s %q: %w", t.Name, target.Kind.Lower(), target.Name, err)
	}
	if err := s.opts.Store.RecordFire(context.WithoutCancel(ctx), t.Name, r.ID, source, tick, s.opts.Now()); err != nil {
		// The run is queued: recording is for the listing and catch-up.
		s.log.Error("trigger fired but its firing was not recorded", "trigger", t.Name, "run_id", r.ID, "err", err)
	}
	r.Trigger = t.Name
	s.log.Info("trigger fired", "trigger", t.Name, "source", source, "run_id", r.ID, "tick", tick.UTC())
	return r, nil
}

// message is the message a firing's run gets.
func message(ctx context.Context, t *spec.Trigger, tick time.Time, header http.Header, body []byte) (string, error) {
	switch {
	case t.Webhook != nil && body != nil:
		return renderWebhookMessage(ctx, t, header, body)
	case t.Message != "":
		return t.Message, nil
	case len(t.Input) > 0:
		b, err := json.Marshal(t.Input)
		if err != nil {
			return "", fmt.Errorf("trigger %q: encoding its input: %w", t.Name, err)
		}
		return string(b), nil
	}
	return fmt.Sprintf("Trigger %s fired for %s", t.Name, tick.UTC().Format(time.RFC3339)), nil
}

// renderWebhookMessage renders a webhook trigger's message template over
// the request: body is the JSON body (null when the body is not JSON),
// headers the request's headers (the first value of each, by canonical
// name), raw the body as text. Without a message the run gets the raw body.
func renderWebhookMessage(ctx context.Context, t *spec.Trigger, header http.Header, body []byte) (string, error) {
	tmpl := t.WebhookMessage()
	if tmpl == nil {
		if t.Message != "" {
			return t.Message, nil
		}
		return string(body), nil
	}
	var parsed any
	if err := json.Unmarshal(body, &parsed); err != nil {
		parsed = nil
	}
	headers := make(map[string]any, len(header))
	for k, v := range header {
		if len(v) > 0 {
			headers[http.CanonicalHeaderKey(k)] = v[0]
		}
	}
	msg, err := tmpl.Render(ctx, expr.Vars{"body": parsed, "headers": headers, "raw": string(body)})
	if err != nil {
		return "", fmt.Errorf("trigger %q: rendering its message over the request: %w", t.Name, err)
	}
	return msg, nil
}

// WebhookTrigger returns the serving trigger whose webhook path is path.
func WebhookTrigger(snap *engine.Snapshot, path string) (*spec.Trigger, bool) {
	for _, t := range Triggers(snap) {
		if t.Webhook != nil && t.Webhook.Path == path {
			return t, true
		}
	}
	return nil, false
}

// Webhook answers a call of the webhook at path: when the body's signature
// (in the trigger's signature header) is right, it starts a run. A refusal
// is logged, never with the secret or the body.
func (s *Service) Webhook(ctx context.Context, path string, header http.Header, body []byte) (*session.Run, error) {
	t, ok := WebhookTrigger(s.opts.Snapshots.Current(), path)
	if !ok {
		return nil, fmt.Errorf("webhook %q: %w", path, ErrNotFound)
	}
	if !Verify(t.Webhook.Secret, header.Get(t.Webhook.SignatureHeader), body) {
		n := s.refused.Add(1)
		s.log.Warn("webhook call refused: missing or invalid signature", "trigger", t.Name, "path", path,
			"header", t.Webhook.SignatureHeader, "refused_total", n)
		return nil, fmt.Errorf("webhook %q: %w", path, ErrSignature)
	}
	return s.start(ctx, t, SourceWebhook, s.opts.Now(), header, body)
}

// Refused counts the webhook calls refused for their signature.
func (s *Service) Refused() uint64 { return s.refused.Load() }

// Sign returns the signature of body under secret as a webhook expects it:
// "sha256=" and the hex HMAC-SHA256.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is body's signature under secret, in
// constant time.
func Verify(secret, sig string, body []byte) bool {
	got, ok := strings.CutPrefix(strings.TrimSpace(sig), "sha256=")
	if !ok {
		return false
	}
	gotMAC, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hmac.Equal(gotMAC, m.Sum(nil))
}
