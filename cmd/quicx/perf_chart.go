package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"strings"
)

// writeChart draws the summary as a PNG bar chart: for each scenario, quic-go
// at 100 % and quicx at its ratio, with the target lines at 90 % and 97 %.
// Text is drawn with a built-in 5×7 pixel font, so the chart needs nothing
// beyond the standard library.
func writeChart(path string, rows []summaryRow, transports []string) error {
	const (
		w, h         = 960, 540
		left, right  = 90, 30
		top, bottom  = 80, 130
		scale        = 2 // font pixel size
		maxPct       = 120.0
		barW, barGap = 56, 8
	)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(img, img.Bounds(), color.RGBA{255, 255, 255, 255})
	var (
		black  = color.RGBA{20, 20, 20, 255}
		grid   = color.RGBA{225, 225, 225, 255}
		quicgo = color.RGBA{150, 150, 150, 255}
		quicxC = color.RGBA{33, 102, 172, 255}
		goal   = color.RGBA{27, 158, 119, 255}
		floor  = color.RGBA{217, 95, 2, 255}
	)
	both := len(transports) == 2
	plotH := h - top - bottom
	y := func(pct float64) int { return top + plotH - int(pct/maxPct*float64(plotH)) }

	drawText(img, left, 20, "QUICX PERF: QUICX AGAINST RAW QUIC-GO, SAME RUN, SAME MACHINE", black, scale)
	drawText(img, left, 44, "BAR HEIGHT: QUICX / QUIC-GO (LATENCY: QUIC-GO P50 / QUICX P50). ABOVE 100% IS BETTER.", black, 1)
	for pct := 0.0; pct <= maxPct; pct += 20 {
		fill(img, image.Rect(left, y(pct), w-right, y(pct)+1), grid)
		drawText(img, left-60, y(pct)-6, fmt.Sprintf("%3.0f%%", pct), black, scale)
	}
	dashed(img, left, w-right, y(90), floor)
	dashed(img, left, w-right, y(97), goal)
	drawText(img, w-right-150, y(90)+4, "TARGET 0.90", floor, 1)
	drawText(img, w-right-150, y(97)-10, "GOAL 0.97", goal, 1)
	fill(img, image.Rect(left, y(0), w-right, y(0)+2), black)

	n := max(len(rows), 1)
	groupW := (w - left - right) / n
	for i, r := range rows {
		x0 := left + i*groupW + (groupW-2*barW-barGap)/2
		pct := 100.0
		if both {
			pct = r.Ratio * 100
		}
		fill(img, image.Rect(x0, y(100), x0+barW, y(0)), quicgo)
		fill(img, image.Rect(x0+barW+barGap, y(min(pct, maxPct)), x0+2*barW+barGap, y(0)), quicxC)
		if both {
			label := fmt.Sprintf("%.2f", r.Ratio)
			drawText(img, x0+barW+barGap+(barW-textWidth(label, scale))/2, y(min(pct, maxPct))-18, label, black, scale)
		}
		cx := left + i*groupW + groupW/2
		name := strings.ToUpper(string(r.Scenario))
		drawText(img, cx-textWidth(name, scale)/2, y(0)+12, name, black, scale)
		unit := strings.ToUpper(strings.ReplaceAll(r.Unit, "µs", "US"))
		lines := []string{unit}
		for _, tr := range transports {
			lines = append(lines, fmt.Sprintf("%s %s", strings.ToUpper(tr), formatValue(r.Scenario, r.Values[tr])))
		}
		for j, l := range lines {
			drawText(img, cx-textWidth(l, 1)/2, y(0)+36+j*12, l, black, 1)
		}
	}
	// Legend.
	lx := left
	fill(img, image.Rect(lx, h-28, lx+14, h-14), quicgo)
	drawText(img, lx+20, h-26, "RAW QUIC-GO (100%)", black, 1)
	fill(img, image.Rect(lx+200, h-28, lx+214, h-14), quicxC)
	drawText(img, lx+220, h-26, "QUICX", black, 1)

	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(out, img); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func dashed(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x < x1; x += 12 {
		fill(img, image.Rect(x, y, min(x+7, x1), y+2), c)
	}
}

func textWidth(s string, scale int) int { return len(s) * 6 * scale }

// drawText draws s (upper case, digits and a little punctuation) at x, y.
func drawText(img *image.RGBA, x, y int, s string, c color.RGBA, scale int) {
	for i, r := range s {
		g, ok := glyphs[r]
		if !ok {
			g = glyphs['?']
		}
		for row, bits := range g {
			for col, b := range bits {
				if b == '#' {
					px := x + (i*6+col)*scale
					py := y + row*scale
					fill(img, image.Rect(px, py, px+scale, py+scale), c)
				}
			}
		}
	}
}

// glyphs is a 5×7 pixel font.
var glyphs = map[rune][7]string{
	' ': {".....", ".....", ".....", ".....", ".....", ".....", "....."},
	'?': {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."},
	'.': {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."},
	',': {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."},
	':': {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."},
	'-': {".....", ".....", ".....", "#####", ".....", ".....", "....."},
	'/': {"....#", "....#", "...#.", "..#..", ".#...", "#....", "#...."},
	'%': {"##..#", "##..#", "...#.", "..#..", ".#...", "#..##", "#..##"},
	'(': {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."},
	')': {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."},
	'0': {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	'1': {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2': {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3': {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."},
	'4': {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'5': {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	'6': {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
	'7': {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'8': {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	'9': {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B': {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'C': {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D': {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."},
	'E': {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F': {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'G': {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"},
	'H': {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'I': {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'J': {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K': {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'L': {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
	'M': {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N': {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"},
	'O': {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'P': {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'Q': {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"},
	'R': {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'S': {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
	'T': {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U': {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V': {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W': {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
	'X': {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y': {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'Z': {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"},
}
