package watch

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: Run
// must stop its pump and fsnotify's reader before returning.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
