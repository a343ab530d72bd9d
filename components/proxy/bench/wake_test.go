package main

import "testing"

func TestFirstCPU(t *testing.T) {
	for _, tc := range []struct {
		list string
		want int
		bad  bool
	}{
		{list: "0", want: 0},
		{list: "1", want: 1},
		{list: "2-3", want: 2},
		{list: "5,7", want: 5},
		{list: "", bad: true},
		{list: "x", bad: true},
	} {
		got, err := firstCPU(tc.list)
		if tc.bad {
			if err == nil {
				t.Errorf("firstCPU(%q) = %d, want an error", tc.list, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("firstCPU(%q) = %d, %v; want %d", tc.list, got, err, tc.want)
		}
	}
}
