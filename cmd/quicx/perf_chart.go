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
func writeChart(path string, rows []perfSummaryRow, transports []string) error {
	const (
		w, h         = 960, 540
		left, right  = 90, 30
		top, bottom  = 100, 130
		scale        = 2 // font pixel size
		maxPct       = 120.0
		barW, barGap = 44, 6
	)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	chartFill(img, img.Bounds(), color.RGBA{255, 255, 255, 255})
	var (
		black  = color.RGBA{20, 20, 20, 255}
		grid   = color.RGBA{225, 225, 225, 255}
		quicgo = color.RGBA{150, 150, 150, 255}
		quicxC = color.RGBA{33, 102, 172, 255}
		cpuC   = color.RGBA{146, 197, 222, 255}
		goal   = color.RGBA{27, 158, 119, 255}
		floor  = color.RGBA{217, 95, 2, 255}
	)
	both := len(transports) == 2
	plotH := h - top - bottom
	y := func(pct float64) int { return top + plotH - int(pct/maxPct*float64(plotH)) }

	chartText(img, left, 20, "QUICX PERF: QUICX AGAINST RAW QUIC-GO, SAME RUN, SAME MACHINE", black, scale)
	chartText(img, left, 44, "BAR: MEDIAN QUICX / MEDIAN QUIC-GO (LATENCY: QUIC-GO P50 / QUICX P50). ABOVE 100% IS BETTER.", black, 1)
	chartText(img, left, 58, "WHISKER: LOWEST AND HIGHEST RATIO OF ONE ROUND'S PAIR OF RUNS. LIGHT BAR: QUIC-GO CPU TIME / QUICX CPU TIME PER UNIT OF WORK.", black, 1)
	for pct := 0.0; pct <= maxPct; pct += 20 {
		chartFill(img, image.Rect(left, y(pct), w-right, y(pct)+1), grid)
		chartText(img, left-60, y(pct)-6, fmt.Sprintf("%3.0f%%", pct), black, scale)
	}
	chartFill(img, image.Rect(left, y(0), w-right, y(0)+2), black)

	n := max(len(rows), 1)
	groupW := (w - left - right) / n
	for i, r := range rows {
		x0 := left + i*groupW + (groupW-3*barW-2*barGap)/2
		pct := 100.0
		if both {
			pct = r.Ratio * 100
		}
		chartFill(img, image.Rect(x0, y(100), x0+barW, y(0)), quicgo)
		chartFill(img, image.Rect(x0+barW+barGap, y(min(pct, maxPct)), x0+2*barW+barGap, y(0)), quicxC)
		if both && r.CPURatio > 0 {
			x2 := x0 + 2*(barW+barGap)
			cpu := r.CPURatio * 100
			chartFill(img, image.Rect(x2, y(min(cpu, maxPct)), x2+barW, y(0)), cpuC)
			label := fmt.Sprintf("%.2f", r.CPURatio)
			chartText(img, x2+(barW-chartTextWidth(label, 1))/2, y(min(cpu, maxPct))-12, label, black, 1)
		}
		if both && r.RatioMax > r.RatioMin {
			// The spread of the rounds' ratios, as a whisker.
			cx := x0 + barW + barGap + barW/2
			lo, hi := y(min(r.RatioMin*100, maxPct)), y(min(r.RatioMax*100, maxPct))
			chartFill(img, image.Rect(cx-1, hi, cx+1, lo), black)
			chartFill(img, image.Rect(cx-8, hi, cx+8, hi+2), black)
			chartFill(img, image.Rect(cx-8, lo-1, cx+8, lo+1), black)
		}
		if both {
			label := fmt.Sprintf("%.2f", r.Ratio)
			top := min(y(min(pct, maxPct)), y(min(r.RatioMax*100, maxPct)))
			chartText(img, x0+barW+barGap+(barW-chartTextWidth(label, scale))/2, top-18, label, black, scale)
		}
		cx := left + i*groupW + groupW/2
		name := strings.ToUpper(string(r.Scenario))
		chartText(img, cx-chartTextWidth(name, scale)/2, y(0)+12, name, black, scale)
		unit := strings.ToUpper(strings.ReplaceAll(r.Unit, "µs", "US"))
		lines := []string{unit}
		for _, tr := range transports {
			lines = append(lines, fmt.Sprintf("%s %s", strings.ToUpper(tr), perfFormatValue(r.Scenario, r.Values[tr])))
		}
		for j, l := range lines {
			chartText(img, cx-chartTextWidth(l, 1)/2, y(0)+36+j*12, l, black, 1)
		}
	}
	// The targets, over the bars.
	chartDashed(img, left, w-right, y(90), floor)
	chartDashed(img, left, w-right, y(97), goal)
	// Legend.
	lx := left
	chartFill(img, image.Rect(lx, h-28, lx+14, h-14), quicgo)
	chartText(img, lx+20, h-26, "RAW QUIC-GO (100%)", black, 1)
	chartFill(img, image.Rect(lx+180, h-28, lx+194, h-14), quicxC)
	chartText(img, lx+200, h-26, "QUICX", black, 1)
	chartFill(img, image.Rect(lx+260, h-28, lx+274, h-14), cpuC)
	chartText(img, lx+280, h-26, "QUICX CPU EFFICIENCY", black, 1)
	chartDashed(img, lx+420, lx+450, h-22, floor)
	chartText(img, lx+456, h-26, "TARGET 0.90", floor, 1)
	chartDashed(img, lx+540, lx+570, h-22, goal)
	chartText(img, lx+576, h-26, "PROJECT GOAL 0.97", goal, 1)

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

func chartFill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func chartDashed(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x < x1; x += 12 {
		chartFill(img, image.Rect(x, y, min(x+7, x1), y+2), c)
	}
}

func chartTextWidth(s string, scale int) int { return len(s) * 6 * scale }

// chartText draws s (upper case, digits and a little punctuation) at x, y.
func chartText(img *image.RGBA, x, y int, s string, c color.RGBA, scale int) {
	for i, r := range s {
		g, ok := chartGlyphs[r]
		if !ok {
			g = chartGlyphs['?']
		}
		for row, bits := range g {
			for col, b := range bits {
				if b == '#' {
					px := x + (i*6+col)*scale
					py := y + row*scale
					chartFill(img, image.Rect(px, py, px+scale, py+scale), c)
				}
			}
		}
	}
}

// chartGlyphs is a 5×7 pixel font.
var chartGlyphs = map[rune][7]string{
	'\'': {"..#..", "..#..", ".#...", ".....", ".....", ".....", "....."},
	' ':  {".....", ".....", ".....", ".....", ".....", ".....", "....."},
	'?':  {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."},
	'.':  {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."},
	',':  {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."},
	':':  {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."},
	'-':  {".....", ".....", ".....", "#####", ".....", ".....", "....."},
	'/':  {"....#", "....#", "...#.", "..#..", ".#...", "#....", "#...."},
	'%':  {"##..#", "##..#", "...#.", "..#..", ".#...", "#..##", "#..##"},
	'(':  {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."},
	')':  {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."},
	'0':  {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	'1':  {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2':  {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3':  {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."},
	'4':  {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'5':  {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	'6':  {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
	'7':  {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'8':  {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	'9':  {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
	'A':  {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B':  {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'C':  {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D':  {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."},
	'E':  {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F':  {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'G':  {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"},
	'H':  {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'I':  {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'J':  {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K':  {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'L':  {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
	'M':  {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N':  {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"},
	'O':  {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'P':  {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'Q':  {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"},
	'R':  {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'S':  {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
	'T':  {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U':  {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V':  {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W':  {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
	'X':  {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y':  {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'Z':  {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"},
}
