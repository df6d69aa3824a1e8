package seccomp

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/berthrt/berth/errdefs"
)

func TestLoadRoundTrip(t *testing.T) {
	b, err := json.Marshal(DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	p, err := Load(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, DefaultProfile()) {
		t.Error("default profile changed through JSON")
	}
	if len(b) > 20000 {
		t.Logf("default profile is %d bytes of JSON", len(b))
	}
}

func TestDefaultProfileIsFresh(t *testing.T) {
	a := DefaultProfile()
	a.Syscalls[0].Names[0] = "mount"
	if DefaultProfile().Syscalls[0].Names[0] == "mount" {
		t.Error("DefaultProfile shares its slices between calls")
	}
}

// An old-format profile: "name" instead of "names", "architectures"
// instead of "archMap", empty includes/excludes objects.
const oldFormat = `{
	"defaultAction": "SCMP_ACT_ERRNO",
	"architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
	"syscalls": [
		{"name": "read", "action": "SCMP_ACT_ALLOW", "args": [], "includes": {}, "excludes": {}},
		{"name": "write", "action": "SCMP_ACT_ALLOW", "args": null},
		{"name": "exit_group", "action": "SCMP_ACT_ALLOW", "unknownField": 1}
	]
}`

func TestLoadOldFormat(t *testing.T) {
	p, err := Load(strings.NewReader(oldFormat))
	if err != nil {
		t.Fatal(err)
	}
	prog, err := Compile(p, "amd64", nil)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := newVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		d    data
		want uint32
	}{
		{data{nr: sysAMD64()["read"], arch: auditArchX86_64}, allow},
		{data{nr: sys386()["read"], arch: auditArchI386}, allow},
		{data{nr: sysAMD64()["read"] | x32BitNr, arch: auditArchX86_64}, allow},
		{data{nr: sysAMD64()["getpid"], arch: auditArchX86_64}, eperm},
	} {
		if got := runVM(t, vm, c.d); got != c.want {
			t.Errorf("%+v: got %#x, want %#x", c.d, got, c.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	for _, c := range []struct {
		json  string
		field string // "" for a JSON error
	}{
		{`{`, ""},
		{`[]`, ""},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": -1, "value": 0, "op": "SCMP_CMP_EQ"}]}]}`, ""},
		{`{"syscalls": []}`, "defaultAction"},
		{`{"defaultAction": "SCMP_ACT_NOPE"}`, "defaultAction"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}`, "defaultErrnoRet"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 5000}`, "defaultErrnoRet"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}`, "architectures"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}`, "architectures[0]"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["x86"]}]}`, "archMap[0].subArchitectures[0]"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]}`, "flags[0]"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}`, "syscalls[0].names"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW"}]}`, "syscalls[0].name"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "frobnicate"], "action": "SCMP_ACT_ALLOW"}]}`, "syscalls[0].names[1]"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "frobnicate", "action": "SCMP_ACT_ALLOW"}]}`, "syscalls[0].name"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"]}]}`, "syscalls[0].action"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOWED"}]}`, "syscalls[0].action"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}`, "syscalls[0].errnoRet"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}`, "syscalls[0].args[0].index"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 0, "op": "SCMP_CMP_APPROX"}]}]}`, "syscalls[0].args[1].op"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0}]}]}`, "syscalls[0].args[0].op"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd65"]}}]}`, "syscalls[0].includes.arches[0]"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "4"}}]}`, "syscalls[0].excludes.minKernel"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "0.0"}}]}`, "syscalls[0].includes.minKernel"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": [""]}}]}`, "syscalls[0].includes.caps[0]"},
	} {
		_, err := Load(strings.NewReader(c.json))
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", c.json, err)
			continue
		}
		var pe *ProfileError
		if c.field == "" {
			if errors.As(err, &pe) {
				t.Errorf("%s: %v: want a JSON error", c.json, err)
			}
			continue
		}
		if !errors.As(err, &pe) || pe.Field != c.field {
			t.Errorf("%s: %v: want a ProfileError on %s", c.json, err, c.field)
		}
	}
}

func TestLoadAcceptsOtherArchNames(t *testing.T) {
	p := `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["s390_runtime_instr", "riscv_flush_icache", "swapcontext", "read"], "action": "SCMP_ACT_ALLOW"}]}`
	prof, err := Load(strings.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(prof, "amd64", nil); err != nil {
		t.Fatal(err)
	}
}

func TestLoadTooLarge(t *testing.T) {
	r := strings.NewReader(`{"defaultAction": "SCMP_ACT_ERRNO", "comment": "` + strings.Repeat("x", maxProfileSize) + `"}`)
	if _, err := Load(r); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("got %v, want ErrInvalid", err)
	}
}

func TestParseRelease(t *testing.T) {
	for in, want := range map[string]kernelVersion{
		"6.18.44-fc-v782":        {6, 18},
		"5.15.0-91-generic":      {5, 15},
		"4.8":                    {4, 8},
		"3.10.0-1160.el7.x86_64": {3, 10},
	} {
		got, ok := parseRelease(in)
		if !ok || got != want {
			t.Errorf("%s: got %v %v, want %v", in, got, ok, want)
		}
	}
	if _, ok := parseRelease("linux"); ok {
		t.Error("parsed garbage")
	}
}

func TestMinKernel(t *testing.T) {
	s := &Syscall{Names: []string{"read"}, Action: ActAllow, Includes: &Filter{MinKernel: "5.10"}}
	if keep(s, "amd64", nil, kernelVersion{5, 9}, true) {
		t.Error("kept on an older kernel")
	}
	if !keep(s, "amd64", nil, kernelVersion{5, 10}, true) || !keep(s, "amd64", nil, kernelVersion{6, 1}, true) {
		t.Error("dropped on a new enough kernel")
	}
	s = &Syscall{Names: []string{"read"}, Action: ActAllow, Excludes: &Filter{MinKernel: "5.10"}}
	if !keep(s, "amd64", nil, kernelVersion{4, 19}, true) || keep(s, "amd64", nil, kernelVersion{5, 10}, true) {
		t.Error("excludes.minKernel")
	}
}
