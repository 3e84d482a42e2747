package gripsig

import (
	"testing"
	"time"
)

// benchKeys are the signing keys the benchmarks compare, one per algorithm.
var benchKeys = []struct{ alg, key string }{
	{"HS256", "changeme"},
	{"ES256", keyDir + "ec256-private.pem"},
	{"RS256", keyDir + "rsa2048-private.pem"},
}

// sinkNanos keeps the clock baseline from being optimised away.
var sinkNanos int64

// BenchmarkTimeNow is the baseline for BenchmarkSignerToken: the cached path
// is one wall-clock read plus an atomic load, so it costs what time.Now costs
// on the machine (about 20 ns with a vDSO clock, far more without one).
func BenchmarkTimeNow(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkNanos += time.Now().UnixNano()
	}
}

// BenchmarkSignerToken is the per-request cost: a cached token.
func BenchmarkSignerToken(b *testing.B) {
	for _, bk := range benchKeys {
		b.Run(bk.alg, func(b *testing.B) {
			s := mustSigner(b, mustParseSigKey(b, bk.key), 0)
			mustToken(b, s)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Token(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignerTokenParallel is the cached path under contention.
func BenchmarkSignerTokenParallel(b *testing.B) {
	s := mustSigner(b, mustParseSigKey(b, keyDir+"ec256-private.pem"), 0)
	mustToken(b, s)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Token(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSignerSign is the baseline: signing a fresh token, what an
// uncached signer would pay on every request.
func BenchmarkSignerSign(b *testing.B) {
	for _, bk := range benchKeys {
		b.Run(bk.alg, func(b *testing.B) {
			s := mustSigner(b, mustParseSigKey(b, bk.key), 0)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.sign(time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify is the cost of checking an incoming Grip-Sig per request.
func BenchmarkVerify(b *testing.B) {
	for _, bk := range benchKeys {
		b.Run(bk.alg, func(b *testing.B) {
			k := mustParseSigKey(b, bk.key)
			tok := mustToken(b, mustSigner(b, k, 0))
			b.ReportAllocs()
			for b.Loop() {
				if !k.Verify(tok) {
					b.Fatal("token did not verify")
				}
			}
		})
	}
}
