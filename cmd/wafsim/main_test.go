package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-rates", "10,x"}, `-rates: "x" is not a positive number`},
		{[]string{"-only", "no such candidate"}, "-only matches no candidate"},
	} {
		if err := run(tt.args); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.want)
		}
	}
}

// One quick row, printed as the docs show it.
func TestPrintsATable(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	err = run([]string{"-runs", "2", "-rates", "100", "-only", "new blocks"})
	os.Stdout = stdout
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	buf := new(strings.Builder)
	if _, err := io.Copy(buf, r); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "| 0.5% new blocks | 100 | 2 | 0 (0%) | 2 (100%) | 0 (0%) | 0 |") {
		t.Errorf("table:\n%s", out)
	}
}
