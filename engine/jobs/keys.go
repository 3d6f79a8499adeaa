package jobs

import (
	"context"
	"time"
)

// PurgeKeysArgs are the arguments of the job that deletes expired
// idempotency keys.
type PurgeKeysArgs struct{}

// Kind names the purge kind.
func (PurgeKeysArgs) Kind() string { return "purge_idempotency_keys" }

// PurgeKeys deletes the idempotency keys past their retention. It is
// periodic (RegisterKeyPurge); unique, so a slow purge is never doubled.
var PurgeKeys = Kind[PurgeKeysArgs]{MaxAttempts: 3, Unique: true}

// KeyPurger deletes the idempotency keys created before a cutoff (the
// store).
type KeyPurger interface {
	PurgeKeys(ctx context.Context, cutoff time.Time) (int, error)
}

// RegisterKeyPurge makes the clients built on r delete, every interval, the
// idempotency keys created before cutoff(now): those past their retention
// (session.Service.KeyCutoff). Expired keys are treated as new whether or
// not they were purged yet; the purge keeps the table from growing.
func RegisterKeyPurge(r *Registry, p KeyPurger, cutoff func(now time.Time) time.Time, every time.Duration) {
	Register(r, PurgeKeys, func(ctx context.Context, _ PurgeKeysArgs) error {
		_, err := p.PurgeKeys(ctx, cutoff(time.Now()))
		return err
	})
	Periodic(r, every, PurgeKeys, PurgeKeysArgs{})
}
