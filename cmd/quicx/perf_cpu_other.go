//go:build !unix

package main

import "time"

// perfProcessCPU is not measured on this platform.
func perfProcessCPU() time.Duration { return 0 }
