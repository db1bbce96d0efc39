//go:build race

package integration_test

// perfRaceEnabled says the tests run under the race detector; the perf binary
// they start is then built with it too.
const perfRaceEnabled = true
