package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// buildTroupe compiles the real binary once per benchmark run.
func buildTroupe(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "troupe")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

const benchSpec = "kind: Agent\nname: hello\nmodel: echo\ninstructions: Be brief.\n"

// server is a running troupe serve process.
type server struct {
	cmd  *exec.Cmd
	addr string
}

func startTroupe(b *testing.B, bin string) *server {
	b.Helper()
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.yaml"), []byte(benchSpec), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--dir", dir, "--db", filepath.Join(b.TempDir(), "t.db"), "--log-level", "info")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &server{cmd: cmd}
	b.Cleanup(s.stop) // also when the benchmark fails before stopping it
	addrRE := regexp.MustCompile(`addr=(http://\S+)`)
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, stderr) }()
			s.addr = m[1]
			return s
		}
	}
	b.Fatalf("troupe exited before serving: %v", sc.Err())
	return nil
}

// stop ends the process; calling it again does nothing.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
}

func (s *server) run(client *http.Client) error {
	resp, err := client.Post(s.addr+"/agents/hello/runs", "application/json", strings.NewReader(`{"message":"hello","stream":false}`))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// rssMB reads the resident set size of a process from /proc.
func rssMB(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

// BenchmarkColdStart measures starting `troupe serve` (SQLite, the echo model)
// until its first successful run.
func BenchmarkColdStart(b *testing.B) {
	bin := buildTroupe(b)
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		s := startTroupe(b, bin)
		client := &http.Client{}
		for {
			if err := s.run(client); err == nil {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatal("no successful run within 10s")
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(start))
		s.stop()
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "cold-start-p50-ms")
}

// BenchmarkMemory reports the server's RSS idle and after serving 10,000
// sessions (one run each), to show sessions live in the database, not in
// memory.
func BenchmarkMemory(b *testing.B) {
	bin := buildTroupe(b)
	for b.Loop() {
		s := startTroupe(b, bin)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		if err := s.run(client); err != nil {
			b.Fatal(err)
		}
		time.Sleep(time.Second)
		idle := rssMB(s.cmd.Process.Pid)
		// serve10k runs 10,000 new sessions from 8 clients, then reads the
		// RSS once the server has settled.
		serve10k := func() float64 {
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for next.Add(1) <= 10000 {
						if err := s.run(client); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			time.Sleep(2 * time.Second)
			return rssMB(s.cmd.Process.Pid)
		}
		after := serve10k()
		extra := serve10k()
		s.stop()
		b.ReportMetric(idle, "idle-rss-MB")
		b.ReportMetric(after, "rss-10k-sessions-MB")
		b.ReportMetric(extra, "rss-20k-sessions-MB")
	}
}
