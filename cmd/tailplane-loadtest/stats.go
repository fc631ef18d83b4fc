package main

import (
	"math"
	"slices"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of samples by the
// nearest-rank method: the smallest sample with at least p% of the samples
// at or below it. No samples give 0. samples is not modified.
func percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 || p <= 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// latency summarises propagation samples.
type latency struct {
	Samples int     `json:"samples"`
	P50Ms   float64 `json:"p50Ms"`
	P99Ms   float64 `json:"p99Ms"`
	MaxMs   float64 `json:"maxMs"`
}

func summarise(samples []time.Duration) latency {
	return latency{
		Samples: len(samples),
		P50Ms:   ms(percentile(samples, 50)),
		P99Ms:   ms(percentile(samples, 99)),
		MaxMs:   ms(percentile(samples, 100)),
	}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

func secs(d time.Duration) float64 { return math.Round(float64(d)/1e6) / 1000 }
