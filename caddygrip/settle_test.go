package caddygrip

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
)

// countingSettler is a burstSettler whose settles are counted, not run.
func countingSettler() (*burstSettler, *atomic.Int32) {
	n := new(atomic.Int32)
	return &burstSettler{free: func() { n.Add(1) }}, n
}

func startHolds(b *burstSettler, n int) {
	for range n {
		b.started(zap.NewNop())
	}
}

func TestSettleAfterABurstGoesQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, settles := countingSettler()
		startHolds(b, settleMinHolds-1)
		time.Sleep(time.Minute)
		if settles.Load() != 0 {
			t.Fatalf("%d settles after %d holds, want none below %d", settles.Load(), settleMinHolds-1, settleMinHolds)
		}
		startHolds(b, 1)
		time.Sleep(settleQuiet / 2)
		synctest.Wait()
		if settles.Load() != 0 {
			t.Fatal("settled before the holds were quiet")
		}
		time.Sleep(settleQuiet)
		synctest.Wait()
		if settles.Load() != 1 {
			t.Fatalf("%d settles once the burst was quiet, want 1", settles.Load())
		}
	})
}

// Holds that keep arriving (steady traffic) never settle; the settle waits
// for the quiet.
func TestSettleWaitsWhileHoldsKeepComing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, settles := countingSettler()
		startHolds(b, settleMinHolds)
		for range 100 {
			time.Sleep(settleQuiet / 2)
			startHolds(b, 10)
		}
		synctest.Wait()
		if settles.Load() != 0 {
			t.Fatalf("%d settles during steady arrivals, want none", settles.Load())
		}
		time.Sleep(settleQuiet)
		synctest.Wait()
		if settles.Load() != 1 {
			t.Fatalf("%d settles after the arrivals stopped, want 1", settles.Load())
		}
	})
}

// Bursts in a row settle at most once every settleEvery.
func TestSettleAtMostOnceEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, settles := countingSettler()
		startHolds(b, settleMinHolds)
		time.Sleep(settleQuiet + time.Millisecond)
		synctest.Wait()
		first := time.Now()
		startHolds(b, settleMinHolds)
		time.Sleep(time.Second)
		synctest.Wait()
		if settles.Load() != 1 {
			t.Fatalf("%d settles a second after the first, want 1", settles.Load())
		}
		time.Sleep(time.Until(first.Add(settleEvery)) + time.Millisecond)
		synctest.Wait()
		if settles.Load() != 2 {
			t.Fatalf("%d settles once settleEvery passed, want 2", settles.Load())
		}
	})
}
