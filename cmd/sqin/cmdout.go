package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/sqin/sqin"
)

// listOut writes what a list subcommand read, each item as conv shows it,
// as one JSON array (an empty list is [], never null).
func listOut[T, J any](w io.Writer, cmd string, items []T, err error, conv func(T) J) error {
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	out := make([]J, 0, len(items))
	for _, it := range items {
		out = append(out, conv(it))
	}
	return jsonOut(w, out)
}

// cmdError is err as command cmd reports it: notFound when storage has no
// such thing (it names the thing and how to find the right one), err
// wrapped otherwise.
func cmdError(cmd string, err error, notFound string) error {
	if errors.Is(err, sqin.ErrNotFound) {
		return fmt.Errorf("%s: %s", cmd, notFound)
	}
	return fmt.Errorf("%s: %w", cmd, err)
}
