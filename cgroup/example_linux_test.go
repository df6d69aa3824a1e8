//go:build linux

package cgroup_test

import "syscall"

func cgroupFD(fd int) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
}
