package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"empty", nil, 50, 0},
		{"zero-p", ms(1, 2), 0, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median-odd", ms(5, 1, 3), 50, 3 * time.Millisecond},
		{"median-even-lower", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99-of-100", ms(seq(100)...), 99, 99 * time.Millisecond},
		{"p99-of-10", ms(seq(10)...), 99, 10 * time.Millisecond},
		{"max", ms(3, 9, 1), 100, 9 * time.Millisecond},
		{"over-100", ms(3, 9, 1), 150, 9 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]time.Duration(nil), tt.samples...)
			if got := percentile(tt.samples, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.samples, tt.p, got, tt.want)
			}
			if diff := cmp.Diff(in, tt.samples); diff != "" {
				t.Errorf("percentile modified its input (-before +after):\n%s", diff)
			}
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func TestSummarise(t *testing.T) {
	got := summarise([]time.Duration{1500 * time.Microsecond, 2 * time.Millisecond, 10 * time.Millisecond})
	want := latency{Samples: 3, P50Ms: 2, P99Ms: 10, MaxMs: 10}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summarise (-want +got):\n%s", diff)
	}
}
