package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pettyvm/petty/image"
)

// openStore opens the image store in cache (its images/ directory), or the
// default store when cache is "".
func openStore(cache string) (*image.Store, error) {
	if cache == "" {
		return image.DefaultStore()
	}
	return image.OpenStore(filepath.Join(cache, "images"))
}

// buildStoreImage builds (or finds) spec's image in st, finding the agent
// as petty run does and showing the build's steps through prog.
func buildStoreImage(ctx context.Context, st *image.Store, spec image.BuildSpec, prog *progress, log *slog.Logger) (*image.Stored, error) {
	if spec.AgentPath == "" {
		p, err := findAgent()
		if err != nil {
			return nil, err
		}
		spec.AgentPath = p
	}
	name := spec.Name
	if name == "" {
		name = image.DefaultImage
		if spec.Minimal {
			name = image.MinimalImage
		}
	}
	spec.Logger = log
	prog = prog.forBuild()
	spec.Progress = func(step string) { prog.step("building image %s: %s", name, step) }
	res, err := st.Build(ctx, spec)
	prog.done()
	if err != nil {
		return nil, fmt.Errorf("building image %s: %w", name, err)
	}
	return res, nil
}

// defaultPackagesText lists image.DefaultPackages for help texts, in
// lines of at most 80 columns.
func defaultPackagesText() string {
	var b strings.Builder
	col := 0
	for i, p := range image.DefaultPackages {
		w := p
		if i < len(image.DefaultPackages)-1 {
			w += ","
		}
		switch {
		case i == 0:
		case col+1+len(w) > 80:
			b.WriteByte('\n')
			col = 0
		default:
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}

func (a *app) imageLsCommand() *cobra.Command {
	var cache string
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the images in the store",
		Long:    "List the images in the store: name, size of its files, when it was built and its origin (debian, tar or minimal).",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openStore(cache)
			if err != nil {
				return err
			}
			ms, err := st.List()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSIZE\tCREATED\tORIGIN")
			for _, m := range ms {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", m.Name, humanSize(m.SizeBytes), m.Created.Local().Format(time.DateTime), m.Origin)
			}
			return w.Flush()
		},
	}
	ls.Flags().StringVar(&cache, "cache", "", "cache directory; images are in its images/ (default $XDG_CACHE_HOME/petty or ~/.cache/petty)")
	return ls
}

func (a *app) imageRmCommand() *cobra.Command {
	var cache string
	rm := &cobra.Command{
		Use:   "rm NAME...",
		Short: "Remove images from the store",
		Long:  "Remove images from the store. VMs running from one keep running.",
		Args:  minArgs(1, "image name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openStore(cache)
			if err != nil {
				return err
			}
			for _, n := range args {
				if err := st.Remove(n); err != nil {
					return err
				}
			}
			return nil
		},
	}
	rm.Flags().StringVar(&cache, "cache", "", "cache directory; images are in its images/ (default $XDG_CACHE_HOME/petty or ~/.cache/petty)")
	return rm
}

// humanSize formats n bytes with a binary unit: 612M, 48K, 3.2G.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v, u := float64(n), 0
	for v >= unit && u < 4 {
		v /= unit
		u++
	}
	suffix := "KMGT"[u-1 : u]
	if v < 10 {
		return fmt.Sprintf("%.1f%s", v, suffix)
	}
	return fmt.Sprintf("%.0f%s", v, suffix)
}
