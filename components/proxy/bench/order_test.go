package main

import (
	"fmt"
	"testing"
)

// TestWilliamsBalancesNeighbours: every row is an order of all contenders,
// and over the rows every contender runs right after every other one equally
// often, which a rotation does not give (it always puts the same contender
// after the same one).
func TestWilliamsBalancesNeighbours(t *testing.T) {
	for n := 2; n <= 6; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rows := williams(n)
			want := n
			if n%2 == 1 {
				want = 2 * n
			}
			if len(rows) != want {
				t.Fatalf("%d rows, want %d", len(rows), want)
			}
			after := map[[2]int]int{}
			for _, row := range rows {
				seen := map[int]bool{}
				for i, v := range row {
					if v < 0 || v >= n || seen[v] {
						t.Fatalf("row %v is not an order of 0..%d", row, n-1)
					}
					seen[v] = true
					if i > 0 {
						after[[2]int{row[i-1], v}]++
					}
				}
			}
			for a := 0; a < n; a++ {
				for b := 0; b < n; b++ {
					if a == b {
						continue
					}
					if got, wantEach := after[[2]int{a, b}], len(rows)/n; got != wantEach {
						t.Errorf("%d right after %d: %d times, want %d (rows %v)", b, a, got, wantEach, rows)
					}
				}
			}
		})
	}
}

// TestRunOrderCyclesRowsPerCell: a cell's order changes from round to round
// (round+cell picks the row), so no cell keeps one order for every round.
func TestRunOrderCyclesRowsPerCell(t *testing.T) {
	cs := []contender{{name: "direct"}, {name: "haproxy"}, {name: "redisha"}, {name: "haproxy-b"}}
	for cell := 0; cell < 4; cell++ {
		orders := map[string]bool{}
		for r := 0; r < 4; r++ {
			s := ""
			for _, c := range runOrder(cs, r+cell) {
				s += c.name + " "
			}
			orders[s] = true
		}
		if len(orders) != 4 {
			t.Errorf("cell %d: %d distinct orders over 4 rounds, want 4: %v", cell, len(orders), orders)
		}
	}
}
