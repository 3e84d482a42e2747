package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of utime/stime in /proc/<pid>/stat. It is
// 100 on every Linux build this program targets (sysconf needs cgo).
const clockTick = 10 * time.Millisecond

// procStatFields returns the fields of /proc/<pid>/stat after the command
// name, which may contain spaces: f[0] is the state, f[1] the parent,
// f[11] and f[12] utime and stime.
func procStatFields(pid int, want int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < want {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}

// procCPU returns the user+system CPU time a process has used, from
// /proc/<pid>/stat (all its threads, live and exited).
func procCPU(pid int) (time.Duration, error) {
	f, err := procStatFields(pid, 13)
	if err != nil {
		return 0, err
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// procPPID returns the parent of pid.
func procPPID(pid int) (int, error) {
	f, err := procStatFields(pid, 2)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[1])
}

// processTree returns root and all its live descendants.
func processTree(root int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, err := procPPID(pid); err == nil {
			children[pp] = append(children[pp], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// memKB is one process's resident memory: RSS and PSS in KiB.
type memKB struct{ RSS, PSS int64 }

// procMem reads RSS and PSS from /proc/<pid>/smaps_rollup.
func procMem(pid int) (memKB, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return memKB{}, err
	}
	defer f.Close()
	var m memKB
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Rss:"):
			m.RSS = kbField(line)
		case strings.HasPrefix(line, "Pss:"):
			m.PSS = kbField(line)
		}
	}
	return m, sc.Err()
}

func kbField(line string) int64 {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseInt(f[1], 10, 64)
	return n
}

// ioCount is a process's read- and write-type system calls (read/readv,
// write/writev; not send/recv), from /proc/<pid>/io: write calls per
// delivery show whether a proxy coalesces queued messages.
type ioCount struct{ Reads, Writes int64 }

// procIO reads syscr and syscw from /proc/<pid>/io ("self" for this
// process); they cover all the process's threads.
func procIO(pid string) (ioCount, error) {
	b, err := os.ReadFile("/proc/" + pid + "/io")
	if err != nil {
		return ioCount{}, err
	}
	var c ioCount
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "syscr:"):
			c.Reads = kbField(line)
		case strings.HasPrefix(line, "syscw:"):
			c.Writes = kbField(line)
		}
	}
	return c, nil
}

// sutSample is the summed state of the processes under test at one instant.
type sutSample struct {
	At  time.Time
	CPU time.Duration
	Mem memKB
	IO  ioCount
}

// sampleSUT sums CPU and memory over pids; processes that vanished count 0.
func sampleSUT(pids []int) sutSample {
	s := sutSample{At: time.Now()}
	for _, pid := range pids {
		if c, err := procCPU(pid); err == nil {
			s.CPU += c
		}
		if m, err := procMem(pid); err == nil {
			s.Mem.RSS += m.RSS
			s.Mem.PSS += m.PSS
		}
		if c, err := procIO(strconv.Itoa(pid)); err == nil {
			s.IO.Reads += c.Reads
			s.IO.Writes += c.Writes
		}
	}
	return s
}

// selfCPU is this process's CPU time: the generator's own cost.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// kernelMem is system-wide kernel memory that grows with sockets: slab
// (reclaimable and not) and the TCP stack's accounted buffer pages.
type kernelMem struct {
	SlabKB     int64 // all slab: other processes on the box move it too
	SockSlabKB int64 // the slab caches a TCP socket allocates from
	TCPMemKB   int64 // pages queued in TCP buffers
}

// sockSlabs are the slab caches that grow by one object per TCP socket (or
// per fd/epoll registration of one); dentry is left out, as builds on the
// box churn it.
var sockSlabs = map[string]bool{
	"TCP": true, "sock_inode_cache": true, "filp": true, "eventpoll_epi": true,
	"eventpoll_pwq": true, "tcp_bind_bucket": true, "tcp_bind2_bucket": true,
	"skbuff_head_cache": true,
}

// sampleKernel reads /proc/meminfo and /proc/net/sockstat. Both are
// system-wide: other processes on the box move them too.
func sampleKernel() kernelMem {
	var k kernelMem
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "Slab:") {
				k.SlabKB = kbField(line)
			}
		}
	}
	if b, err := os.ReadFile("/proc/slabinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 4 || !sockSlabs[f[0]] {
				continue
			}
			active, _ := strconv.ParseInt(f[1], 10, 64)
			size, _ := strconv.ParseInt(f[3], 10, 64)
			k.SockSlabKB += active * size / 1024
		}
	}
	if b, err := os.ReadFile("/proc/net/sockstat"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "TCP:") {
				continue
			}
			f := strings.Fields(line)
			for i := 1; i+1 < len(f); i += 2 {
				if f[i] == "mem" {
					pages, _ := strconv.ParseInt(f[i+1], 10, 64)
					k.TCPMemKB = pages * int64(os.Getpagesize()) / 1024
				}
			}
		}
	}
	return k
}

// loadAvg returns the 1-minute load average.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// fdLimit returns the soft and hard RLIMIT_NOFILE.
func fdLimit() (soft, hard uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0
	}
	return rl.Cur, rl.Max
}

// cpuTimes returns busy and steal time summed over the given CPUs, from
// /proc/stat: what ran there, whoever it was.
func cpuTimes(cpus []int) (busy, steal time.Duration) {
	if len(cpus) == 0 {
		return 0, 0
	}
	want := map[string]bool{}
	for _, c := range cpus {
		want[fmt.Sprintf("cpu%d", c)] = true
	}
	for _, line := range strings.Split(readFile("/proc/stat"), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !want[f[0]] {
			continue
		}
		var v [8]uint64
		for i := range v {
			v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
		}
		// user nice system idle iowait irq softirq steal
		busy += time.Duration(v[0]+v[1]+v[2]+v[5]+v[6]) * clockTick
		steal += time.Duration(v[7]) * clockTick
	}
	return busy, steal
}

// parseCPUList expands a taskset list such as "0" or "0-1,3".
func parseCPUList(list string) []int {
	var out []int
	for _, part := range strings.Split(list, ",") {
		var a, b int
		if _, err := fmt.Sscanf(part, "%d-%d", &a, &b); err == nil && b >= a {
			for c := a; c <= b; c++ {
				out = append(out, c)
			}
		} else if _, err := fmt.Sscanf(part, "%d", &a); err == nil {
			out = append(out, a)
		}
	}
	return out
}
