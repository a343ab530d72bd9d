package reports

import (
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
)

// chromium finds a headless-capable Chromium or Chrome.
func chromium(t *testing.T) string {
	t.Helper()
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	testenv.RequireBinary(t, "chromium") // fails under make test, skips under -short
	return ""
}

// Screenshot-level check: compare.html opened in headless Chromium shows the plots, not an empty
// canvas. The page is rendered to a PNG (offline: no network, no profile), and the pixels of the
// verdict colours are counted: every dot is drawn in its run's class colour.
func TestCompareHTMLRendersInChromium(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "compare.html")
	if err := WriteCompareHTML(page, sampleDocument()); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--hide-scrollbars", "--window-size=1400,2600", "--screenshot="+shot, "file://"+page)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	near := func(r, g, b uint32, want [3]uint32) bool {
		d := func(a, b uint32) uint32 {
			if a > b {
				return a - b
			}
			return b - a
		}
		return d(r>>8, want[0]) < 40 && d(g>>8, want[1]) < 40 && d(b>>8, want[2]) < 40
	}
	green, orange := [3]uint32{0x2e, 0x9d, 0x57}, [3]uint32{0xc0, 0x56, 0x21}
	var ng, no int
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			switch {
			case near(r, g, b, green):
				ng++
			case near(r, g, b, orange):
				no++
			}
		}
	}
	// A dot of radius 6 covers about 100 pixels; the sample has dozens of pass and finding dots.
	t.Logf("pass-coloured pixels %d, finding-coloured pixels %d", ng, no)
	if ng < 2000 || no < 1000 {
		t.Fatalf("the rendered page shows too few dots: %d pass-coloured, %d finding-coloured pixels", ng, no)
	}
	if out := os.Getenv("REDISHA_COMPARE_SCREENSHOT"); out != "" {
		b, _ := os.ReadFile(shot)
		_ = os.WriteFile(out, b, 0o644)
	}
}
