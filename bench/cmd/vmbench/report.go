package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/pettyvm/petty/bench/internal/stats"
)

// printTable prints p50 and p90 of both phases, per mode and driver, in ms.
func printTable(drivers []driver, seq, par map[string]results) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tdriver\tcreate→InstanceStart p50 ms\tp90 ms\tshutdown→reaped p50 ms\tp90 ms\tn\t")
	for _, mode := range []struct {
		name string
		res  map[string]results
	}{{"sequential", seq}, {"concurrent", par}} {
		for _, d := range drivers {
			r := mode.res[d.name()]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", mode.name, d.name(),
				ms(stats.Percentile(r.create, 50)), ms(stats.Percentile(r.create, 90)),
				ms(stats.Percentile(r.shutdown, 50)), ms(stats.Percentile(r.shutdown, 90)),
				len(r.create))
		}
	}
	tw.Flush()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", stats.Ms(d)) }
