package eventbus

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBusFiltersAndNeverBlocks(t *testing.T) {
	var b Bus[string, int]
	all, stopAll := b.Subscribe()
	odd, stopOdd := b.Subscribe("odd")
	for i := range BufferDefault + 10 { // more than fits: the sender must not block
		kind := "even"
		if i%2 == 1 {
			kind = "odd"
		}
		b.Emit(kind, i)
	}
	stopAll()
	stopOdd()
	stopOdd() // idempotent
	n := 0
	for range all {
		n++
	}
	if n != BufferDefault {
		t.Errorf("all: %d events, want the %d that fit", n, BufferDefault)
	}
	// all missed 10 (the even and odd past its buffer); odd got its
	// BufferDefault/2+5 within its buffer.
	if d := b.Dropped(); d != 10 {
		t.Errorf("Dropped: %d, want the 10 events all missed", d)
	}
	for v := range odd {
		if v%2 != 1 {
			t.Errorf("odd subscription got %d", v)
		}
	}
	b.Emit("odd", 1) // after every subscription ended
}
