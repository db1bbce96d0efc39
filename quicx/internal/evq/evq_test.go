package evq

import (
	"sync"
	"testing"
	"testing/synctest"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func drain[E any](q *Queue[E]) []E {
	var out []E
	for e := range q.C() {
		out = append(out, e)
	}
	return out
}

func TestOrderAndFinal(t *testing.T) {
	for _, capacity := range []int{0, 1, 16} {
		q := New[int](capacity)
		for i := range 100 {
			if !q.Push(i) {
				t.Fatalf("cap %d: push %d refused", capacity, i)
			}
		}
		if !q.PushFinal(100) {
			t.Fatalf("cap %d: final refused", capacity)
		}
		if q.Push(101) || q.PushFinal(102) || q.End() {
			t.Fatalf("cap %d: accepted an event after the final one", capacity)
		}
		got := drain(q)
		if len(got) != 101 {
			t.Fatalf("cap %d: got %d events, want 101", capacity, len(got))
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("cap %d: event %d is %d", capacity, i, v)
			}
		}
	}
}

// TestPushNeverBlocks pushes from the consumer's own goroutine with an
// unbuffered channel: a blocking Push would deadlock.
func TestPushNeverBlocks(t *testing.T) {
	q := New[int](0)
	var pushed, got []int
	push := func(v int) { pushed = append(pushed, v); q.Push(v) }
	push(0)
	for v := range q.C() {
		got = append(got, v)
		switch n := len(got); {
		case n < 50:
			push(n)
			push(n + 1000)
		case n == 50:
			pushed = append(pushed, -1)
			q.PushFinal(-1)
		}
	}
	if len(got) != len(pushed) {
		t.Fatalf("received %d events, pushed %d", len(got), len(pushed))
	}
	for i := range got {
		if got[i] != pushed[i] {
			t.Fatalf("event %d: got %d, pushed %d", i, got[i], pushed[i])
		}
	}
}

func TestConcurrentProducersKeepPerProducerOrder(t *testing.T) {
	q := New[[2]int](1)
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := range 500 {
				q.Push([2]int{p, i})
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); q.PushFinal([2]int{-1, 0}); close(done) }()
	last := map[int]int{0: -1, 1: -1, 2: -1, 3: -1}
	count := 0
	for e := range q.C() {
		if e[0] == -1 {
			continue
		}
		if e[1] != last[e[0]]+1 {
			t.Fatalf("producer %d: %d after %d", e[0], e[1], last[e[0]])
		}
		last[e[0]] = e[1]
		count++
	}
	<-done
	if count != 2000 {
		t.Fatalf("got %d events", count)
	}
}

func TestEndWithoutFinal(t *testing.T) {
	q := New[int](0)
	q.Push(1)
	q.End()
	if got := drain(q); len(got) != 1 || got[0] != 1 {
		t.Fatalf("got %v", got)
	}
	empty := New[int](0)
	empty.End()
	if got := drain(empty); len(got) != 0 {
		t.Fatalf("got %v", got)
	}
}

// TestIdleQueueHasNoGoroutine checks that the pump exits once the consumer
// has caught up.
func TestIdleQueueHasNoGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := New[int](0)
		for i := range 10 {
			q.Push(i)
		}
		for range 10 {
			<-q.C()
		}
		synctest.Wait() // the pump must have exited: the bubble would report it blocked
		if q.Pending() != 0 {
			t.Fatalf("pending %d", q.Pending())
		}
		q.End()
	})
}

// A Queue embedded in its object and prepared with Init behaves like New's.
func TestInitEmbedded(t *testing.T) {
	var obj struct {
		name string
		q    Queue[int]
	}
	obj.q.Init(1)
	for i := range 10 {
		obj.q.Push(i)
	}
	obj.q.PushFinal(10)
	got := drain(&obj.q)
	if len(got) != 11 || got[0] != 0 || got[10] != 10 {
		t.Fatalf("got %v", got)
	}
}
