package ratelimit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/store"
)

// Store keeps the limits' state where every replica sees it; store.DB.
type Store interface {
	// TakeRate spends one request of subject's GCRA allowance and returns
	// 0, or how long until a request would be allowed (spending nothing).
	TakeRate(ctx context.Context, subject string, now time.Time, emission, tolerance time.Duration) (time.Duration, error)
	// ReserveRun takes one of subject's limit concurrent runs for a run
	// about to start, as reservation token that counts until ttl from now
	// (unless bound or released): the subject's runs at once and whether
	// it was taken. Counting and taking are one decision.
	ReserveRun(ctx context.Context, subject, token string, limit int, now time.Time, ttl time.Duration) (int, bool, error)
	// BindRun turns reservation token of subjects into run runID, which
	// counts while it is PENDING or RUNNING.
	BindRun(ctx context.Context, subjects []string, token, runID string) error
	// ReleaseRun gives back the slots reservation token took.
	ReleaseRun(ctx context.Context, subjects []string, token string) error
}

var _ Store = (*store.DB)(nil)

// Options configure a Limiter.
type Options struct {
	Store Store
	// Keys carry each key's own limit (keys file rate_limit).
	Keys *auth.Keyring
	// User is every user's limit (--user-rate-limit, --user-burst,
	// --user-concurrent-runs); the zero value limits no user.
	User auth.RateLimit
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Limiter enforces the keys' and users' limits. It is safe for concurrent
// use.
type Limiter struct {
	opts    Options
	user    cell
	userRPS bool
	limited *prometheus.CounterVec
}

// New returns a limiter, or nil when nothing is limited: then the server
// mounts no middleware and a request pays nothing.
func New(opts Options) *Limiter {
	if !opts.Keys.Limited() && opts.User.IsZero() {
		return nil
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Limiter{opts: opts, limited: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "troupe_rate_limited_total",
		Help: "Requests refused with 429 by a rate limit, by subject_kind (key, user or ip) and limit (requests or concurrent_runs).",
	}, []string{"subject_kind", "limit"})}
	l.user, l.userRPS = cellOf(opts.User)
	return l
}

// Collector is the limiter's Prometheus counter, troupe_rate_limited_total.
func (l *Limiter) Collector() prometheus.Collector { return l.limited }

// Refusal is a request a limit turned away: 429, with the seconds to wait.
type Refusal struct {
	// Subject names who was limited: "key:<name>", "user:<id>" or
	// "ip:<address>".
	Subject string
	// Limit is "requests" or "concurrent_runs".
	Limit      string
	RetryAfter int
	Msg        string
}

func (r *Refusal) Error() string { return r.Msg }

// StatusCode is 429.
func (r *Refusal) StatusCode() int { return http.StatusTooManyRequests }

// Deny answers a refusal in the route group's format; the middleware has
// set Retry-After already.
type Deny func(c *gin.Context, err error)

// runRoutes are the routes that start (or continue) a run: they count
// towards concurrent runs, and their handlers tell the run they started
// (or continued) with Started.
var runRoutes = map[string]bool{
	"/agents/:id/runs":                     true,
	"/teams/:id/runs":                      true,
	"/workflows/:id/runs":                  true,
	"/workflows/:id/runs/:run_id/continue": true,
	"/v1/chat/completions":                 true,
	"/ui/agents/:id/chat":                  true,
	"/ui/teams/:id/chat":                   true,
}

// exempt are API routes no limit applies to: operators' scrapes.
var exempt = map[string]bool{"/metrics": true, "/metrics/prometheus": true}

// subject is one limited caller and its limit.
type subject struct {
	id, kind string
	rate     cell
	hasRate  bool
	runs     int
}

// Middleware enforces the limits on the routes it is mounted on, after
// authentication: every request spends one of its key's and its user's
// allowance, and a run route is refused while the caller's runs at once
// reach a limit.
func (l *Limiter) Middleware(deny Deny) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.Method == http.MethodOptions || exempt[c.FullPath()] {
			return
		}
		isRun := c.Request.Method == http.MethodPost && runRoutes[c.FullPath()]
		subs := l.subjects(c, isRun)
		ctx := c.Request.Context()
		for _, s := range subs {
			if !s.hasRate {
				continue
			}
			wait, err := l.opts.Store.TakeRate(ctx, s.id, l.opts.Now(), s.rate.emission, s.rate.tolerance)
			if err != nil {
				// A limit the database cannot check is not a reason to
				// refuse work: the database's own failure will show.
				l.opts.Logger.Warn("rate limit not checked", "subject", s.id, "err", err)
				continue
			}
			if wait > 0 {
				l.refuse(c, deny, s, "requests", RetryAfter(wait),
					fmt.Sprintf("rate limit exceeded for %s: more than %s requests per second; retry after %d s", s.id, formatRate(s.rate), RetryAfter(wait)))
				return
			}
		}
		if !isRun {
			return
		}
		adm, refused, msg := l.admitRuns(ctx, subs)
		if refused != nil {
			l.refuse(c, deny, *refused, "concurrent_runs", 1, msg)
			return
		}
		if adm == nil {
			return
		}
		c.Set(startedKey, adm)
		c.Next()
		// A handler that started no run (a 404, a refused body) gives its
		// slot back; one that did has bound it (Started).
		adm.Release()
	}
}

// reserveTTL is how long a run's reservation counts before the run is
// bound to it: far longer than a run's start takes, short enough that the
// slot of a request that died (a crashed replica) comes back soon.
const reserveTTL = time.Minute

// Admission is a run's reservation of its callers' concurrent runs, taken
// before the run starts: Bind counts the run that started in its place,
// Release gives the slots back when none did. Its methods are safe on a
// nil Admission (nothing limited) and act once.
type Admission struct {
	l        *Limiter
	ctx      context.Context
	subjects []string
	token    string
	done     atomic.Bool
}

// Bind counts runID, which the caller started, where the reservation was.
func (a *Admission) Bind(runID string) {
	if a == nil || !a.done.CompareAndSwap(false, true) {
		return
	}
	if err := a.l.opts.Store.BindRun(a.ctx, a.subjects, a.token, runID); err != nil {
		a.l.opts.Logger.Warn("run not counted towards its concurrent runs limit", "subjects", a.subjects, "run_id", runID, "err", err)
	}
}

// Release gives the reservation's slots back; after Bind it does nothing.
func (a *Admission) Release() {
	if a == nil || !a.done.CompareAndSwap(false, true) {
		return
	}
	if err := a.l.opts.Store.ReleaseRun(a.ctx, a.subjects, a.token); err != nil {
		// The reservation expires by itself.
		a.l.opts.Logger.Warn("releasing a concurrent run reservation", "subjects", a.subjects, "err", err, "expires_in", reserveTTL)
	}
}

// admitRuns reserves a run of each of subs' concurrent runs limits: the
// reservation, or the subject refused and why when one is reached (and
// nothing is kept). No limit, no reservation.
func (l *Limiter) admitRuns(ctx context.Context, subs []subject) (adm *Admission, refused *subject, msg string) {
	for _, s := range subs {
		if s.runs <= 0 {
			continue
		}
		if adm == nil {
			// The request's cancellation must not leave a reservation or a
			// bound run unrecorded.
			adm = &Admission{l: l, ctx: context.WithoutCancel(ctx), token: "reservation:" + rand.Text()}
		}
		n, ok, err := l.opts.Store.ReserveRun(ctx, s.id, adm.token, s.runs, l.opts.Now(), reserveTTL)
		if err != nil {
			// A limit the database cannot check is not a reason to refuse
			// work: the database's own failure will show.
			l.opts.Logger.Warn("concurrent runs not checked", "subject", s.id, "err", err)
			continue
		}
		if !ok {
			adm.Release()
			return nil, &s, fmt.Sprintf("concurrent runs limit reached for %s: %d of %d runs are pending or running; retry when one ends", s.id, n, s.runs)
		}
		adm.subjects = append(adm.subjects, s.id)
	}
	if adm != nil && len(adm.subjects) == 0 {
		return nil, nil, ""
	}
	return adm, nil, ""
}

// AdmitRun reserves the caller's concurrent runs for a run that a request
// other than a run route starts (an MCP tool call or an A2A message, several
// of which may share one request): a *Refusal when a limit is reached, else
// the Admission the caller binds to the run it starts, or releases when it
// starts none (nil when no limit applies). The caller is the one the
// middleware saw on c, which must still be in flight.
func (l *Limiter) AdmitRun(c *gin.Context) (*Admission, error) {
	if l == nil {
		return nil, nil
	}
	adm, refused, msg := l.admitRuns(c.Request.Context(), l.subjects(c, false))
	if refused != nil {
		l.limited.WithLabelValues(refused.kind, "concurrent_runs").Inc()
		return nil, &Refusal{Subject: refused.id, Limit: "concurrent_runs", RetryAfter: 1, Msg: msg}
	}
	return adm, nil
}

func (l *Limiter) refuse(c *gin.Context, deny Deny, s subject, limit string, retry int, msg string) {
	l.limited.WithLabelValues(s.kind, limit).Inc()
	c.Header("Retry-After", strconv.Itoa(retry))
	deny(c, &Refusal{Subject: s.id, Limit: limit, RetryAfter: retry, Msg: msg})
}

// subjects are the limited callers of a request: its key, when the key
// has a limit, and its user, when users are limited. The user is the key's
// bound user; else the user_id the request names (query, or the JSON or
// form body of a run route; user on the OpenAI surface); else, for lack of
// anyone, the client's address.
func (l *Limiter) subjects(c *gin.Context, isRun bool) []subject {
	var subs []subject
	p := auth.Of(c)
	if k := p.Key(); k != nil && !k.Limit.IsZero() {
		rate, ok := cellOf(k.Limit)
		subs = append(subs, subject{id: "key:" + k.Name, kind: "key", rate: rate, hasRate: ok, runs: k.Limit.ConcurrentRuns})
	}
	if l.opts.User.IsZero() {
		return subs
	}
	user := p.UserID(requestedUser(c, isRun))
	s := subject{id: "user:" + user, kind: "user", rate: l.user, hasRate: l.userRPS, runs: l.opts.User.ConcurrentRuns}
	if user == "" {
		s.id, s.kind = "ip:"+c.ClientIP(), "ip"
	}
	return append(subs, s)
}

// maxPeek bounds the body read for its user_id: a run's message may be
// large, but the body stays in memory for the handler anyway.
const maxPeek = 1 << 20

// requestedUser is the user_id a request names, without consuming its body.
// Only run routes' bodies are read: other routes name no user in theirs,
// and an upload's may be large.
func requestedUser(c *gin.Context, isRun bool) string {
	if u := c.Query("user_id"); u != "" {
		return u
	}
	if !isRun || c.Request.Body == nil || c.Request.Body == http.NoBody {
		return ""
	}
	ct, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	switch ct {
	case "application/json":
		data, err := io.ReadAll(io.LimitReader(c.Request.Body, maxPeek))
		// The handler reads what was peeked, then the rest.
		c.Request.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(data), c.Request.Body), c.Request.Body}
		if err != nil {
			return ""
		}
		var b struct {
			UserID string `json:"user_id"`
			User   string `json:"user"` // the OpenAI surface's
		}
		_ = json.Unmarshal(data, &b)
		if b.UserID == "" && c.FullPath() == "/v1/chat/completions" {
			return b.User
		}
		return b.UserID
	case "application/x-www-form-urlencoded", "multipart/form-data":
		// Parsed forms are kept on the request: the handler reads the
		// same values.
		return c.PostForm("user_id")
	}
	return ""
}

func formatRate(c cell) string {
	return strconv.FormatFloat(float64(time.Second)/float64(c.emission), 'g', 4, 64)
}

// startedKey is where the middleware keeps, in a run route's gin.Context,
// the Admission the run the handler starts is bound to.
const startedKey = "troupe.ratelimit.started"

// Started tells the limiter that a run route's handler started runID, as
// soon as the run service has stored it (before the run executes), so that
// it counts towards its caller's concurrent runs in place of the slot the
// middleware reserved. Without a limit on the route it does nothing.
func Started(c *gin.Context, runID string) {
	if adm, ok := c.Get(startedKey); ok {
		if adm, ok := adm.(*Admission); ok {
			adm.Bind(runID)
		}
	}
}
