package session

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// KeyStore is the store's ability idempotent run requests need. store.DB
// has it.
type KeyStore interface {
	// ReserveKey records key for userID's new run runID, made by a request
	// with hash; when the key is taken, and was created at or after
	// expired, it returns the run and hash stored with it instead
	// (reserved false). A key created before expired is taken over.
	ReserveKey(ctx context.Context, userID, key, hash, runID string, expired time.Time) (existingRun, existingHash string, reserved bool, err error)
	// LookupKey returns the run and hash stored with userID's key, unless
	// it has none created at or after expired.
	LookupKey(ctx context.Context, userID, key string, expired time.Time) (runID, hash string, found bool, err error)
	// ReleaseKey forgets the key reserved for runID.
	ReleaseKey(ctx context.Context, userID, key, runID string) error
}

// ReplayError reports a run request made again with the same idempotency
// key and request: RunID is the run the first one made. Callers answer
// with that run instead of starting another.
type ReplayError struct {
	RunID string
}

func (e *ReplayError) Error() string { return "this request was already made: run " + e.RunID }

// MaxIdempotencyKey bounds an idempotency key's length.
const MaxIdempotencyKey = 255

// DefaultIdempotencyTTL is how long an idempotency key is kept by default:
// a day, as long as clients commonly retry a request (Stripe keeps keys as
// long).
const DefaultIdempotencyTTL = 24 * time.Hour

// KeyCutoff is the creation time before which idempotency keys are past
// their retention (Options.IdempotencyTTL) at now: such a key is treated as
// new, and the purge deletes it.
func (s *Service) KeyCutoff(now time.Time) time.Time { return now.Add(-s.opts.IdempotencyTTL) }

// keyStore returns the store's KeyStore after checking p's key.
func (s *Service) keyStore(p Params) (KeyStore, error) {
	if len(p.IdempotencyKey) > MaxIdempotencyKey {
		return nil, &Error{Kind: ErrInvalid, Msg: fmt.Sprintf("the Idempotency-Key is longer than %d bytes", MaxIdempotencyKey)}
	}
	ks, ok := s.opts.Store.(KeyStore)
	if !ok {
		return nil, errors.New("the run store does not keep idempotency keys")
	}
	return ks, nil
}

// keyUsed is the answer to a request whose key is stored with hash for run:
// a replay of the same request, or a refusal of another one.
func keyUsed(p Params, run, hash string) error {
	if hash == p.RequestHash {
		return &ReplayError{RunID: run}
	}
	return &Error{Kind: ErrInvalid, Msg: "this Idempotency-Key was already used with a different request; use a new key for a new request"}
}

// reserveKey reserves p's idempotency key, if any, for run runID.
func (s *Service) reserveKey(ctx context.Context, p Params, runID string) error {
	if p.IdempotencyKey == "" {
		return nil
	}
	ks, err := s.keyStore(p)
	if err != nil {
		return err
	}
	run, hash, reserved, err := ks.ReserveKey(ctx, p.UserID, p.IdempotencyKey, p.RequestHash, runID, s.KeyCutoff(time.Now()))
	switch {
	case err != nil:
		return fmt.Errorf("reserving the idempotency key: %w", err)
	case reserved:
		return nil
	}
	return keyUsed(p, run, hash)
}

// CheckKey answers a request whose idempotency key is already in use, as
// Start and Submit would, without starting anything: a *ReplayError naming
// the run the first request made, or a refusal when the key came with
// another request; nil for a request without a key or with a key not in use
// (or past its retention). A full queue checks it first, so that a replay
// gets its run rather than a 429.
func (s *Service) CheckKey(ctx context.Context, p Params) error {
	if p.IdempotencyKey == "" {
		return nil
	}
	ks, err := s.keyStore(p)
	if err != nil {
		return err
	}
	// The key is stored under the user the run acts as, which resolve
	// settles.
	tg, err := s.resolve(ctx, &p)
	if err != nil {
		return err
	}
	tg.Release()
	run, hash, found, err := ks.LookupKey(ctx, p.UserID, p.IdempotencyKey, s.KeyCutoff(time.Now()))
	switch {
	case err != nil:
		return fmt.Errorf("looking up the idempotency key: %w", err)
	case !found:
		return nil
	}
	return keyUsed(p, run, hash)
}

// releaseKey forgets the key reserved for a run that could not be stored.
func (s *Service) releaseKey(ctx context.Context, p Params, runID string) {
	if p.IdempotencyKey == "" {
		return
	}
	if ks, ok := s.opts.Store.(KeyStore); ok {
		if err := ks.ReleaseKey(context.WithoutCancel(ctx), p.UserID, p.IdempotencyKey, runID); err != nil {
			s.log.Warn("releasing an idempotency key", "err", err)
		}
	}
}
