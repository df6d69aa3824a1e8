package trivial

import "testing"

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		ok   bool
	}{
		{nil, 0, false},
		{[]string{"true"}, 0, true},
		{[]string{"/bin/true", "ignored"}, 0, true},
		{[]string{"false"}, 1, true},
		{[]string{"/bin/toolbox", "true"}, 0, true},
		{[]string{"toolbox", "false", "x"}, 1, true},
		{[]string{"toolbox"}, 0, false},
		{[]string{"/bin/toolbox", "echo", "true"}, 0, false},
		{[]string{"/usr/bin/berth", "true"}, 0, false},
		{[]string{"truex"}, 0, false},
	} {
		code, ok := exitCode(tc.args)
		if code != tc.code || ok != tc.ok {
			t.Errorf("exitCode(%q) = %d, %v; want %d, %v", tc.args, code, ok, tc.code, tc.ok)
		}
	}
}
