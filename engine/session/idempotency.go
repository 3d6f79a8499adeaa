package session

import (
	"context"
	"errors"
	"fmt"
)

// KeyStore is the store's ability idempotent run requests need. store.DB
// has it.
type KeyStore interface {
	// ReserveKey records key for userID's new run runID, made by a request
	// with hash; when the key is taken it returns the run and hash stored
	// with it instead (reserved false).
	ReserveKey(ctx context.Context, userID, key, hash, runID string) (existingRun, existingHash string, reserved bool, err error)
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

// reserveKey reserves p's idempotency key, if any, for run runID.
func (s *Service) reserveKey(ctx context.Context, p Params, runID string) error {
	if p.IdempotencyKey == "" {
		return nil
	}
	if len(p.IdempotencyKey) > MaxIdempotencyKey {
		return &Error{Kind: ErrInvalid, Msg: fmt.Sprintf("the Idempotency-Key is longer than %d bytes", MaxIdempotencyKey)}
	}
	ks, ok := s.opts.Store.(KeyStore)
	if !ok {
		return errors.New("the run store does not keep idempotency keys")
	}
	run, hash, reserved, err := ks.ReserveKey(ctx, p.UserID, p.IdempotencyKey, p.RequestHash, runID)
	switch {
	case err != nil:
		return fmt.Errorf("reserving the idempotency key: %w", err)
	case reserved:
		return nil
	case hash == p.RequestHash:
		return &ReplayError{RunID: run}
	}
	return &Error{Kind: ErrInvalid, Msg: "this Idempotency-Key was already used with a different request; use a new key for a new request"}
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
