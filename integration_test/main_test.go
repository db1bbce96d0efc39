// Package integration_test runs quicx end to end: over real UDP on loopback
// (the *_test.go files here) and over quicxtest's in-memory network under
// testing/synctest (sim_*_test.go).
package integration_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
