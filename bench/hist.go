package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram records durations in log-linear buckets (64 per power of two,
// under 1.6% error), like an HDR histogram, from 1 ns up. Record is safe for
// concurrent use and allocation-free, so every subscriber goroutine can
// share one.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

const (
	histSubBits = 6
	histBuckets = (64 - histSubBits) << histSubBits
)

func histBucket(v uint64) int {
	if v < 1<<(histSubBits+1) {
		return int(v)
	}
	e := bits.Len64(v) - (histSubBits + 1)
	return (e+1)<<histSubBits + int(v>>uint(e)) - 1<<histSubBits
}

// histValue is the midpoint of bucket i.
func histValue(i int) int64 {
	if i < 1<<(histSubBits+1) {
		return int64(i)
	}
	e := i>>histSubBits - 1
	m := int64(i&(1<<histSubBits-1) + 1<<histSubBits)
	return m<<uint(e) + (int64(1)<<uint(e))/2
}

// Record adds one sample; negative durations count as zero.
func (h *histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	i := histBucket(uint64(v))
	if i >= histBuckets {
		i = histBuckets - 1
	}
	h.counts[i].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Count is the number of samples.
func (h *histogram) Count() uint64 { return h.n.Load() }

// Max is the largest sample, exact.
func (h *histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the q-quantile (0 < q <= 1), or 0 without samples.
func (h *histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := histValue(i)
			if m := h.max.Load(); v > m {
				v = m
			}
			return time.Duration(v)
		}
	}
	return h.Max()
}

// latencyMetrics puts the usual percentiles, in microseconds, into m under
// prefix (e.g. "lat_" gives lat_p50_us ...).
func (h *histogram) latencyMetrics(m map[string]float64, prefix string) {
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	m[prefix+"p50_us"] = us(h.Quantile(0.50))
	m[prefix+"p90_us"] = us(h.Quantile(0.90))
	m[prefix+"p99_us"] = us(h.Quantile(0.99))
	m[prefix+"p999_us"] = us(h.Quantile(0.999))
	m[prefix+"max_us"] = us(h.Max())
	m[prefix+"samples"] = float64(h.Count())
}
