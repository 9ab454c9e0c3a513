// Command benchtable prints the summary table of scripts/bench from the
// `go test -bench` output files named on its command line.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/git-remote-daemon/git-remote-daemon/internal/benchtable"
)

func main() {
	var lists [][]benchtable.Result
	for _, path := range os.Args[1:] {
		f, err := os.Open(path)
		if err != nil {
			slog.Error("benchtable", "err", err)
			os.Exit(1)
		}
		res, err := benchtable.Parse(f)
		f.Close()
		if err != nil {
			slog.Error("benchtable", "file", path, "err", err)
			os.Exit(1)
		}
		lists = append(lists, res)
	}
	if err := benchtable.Print(os.Stdout, benchtable.Collect(lists...)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
