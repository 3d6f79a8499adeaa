package store_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Closing a store must not leave goroutines behind (connection openers,
// context watchers of cancelled statements).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
