package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
)

// TestLegacyExampleConfigAndFlags starts the binary as deployments did
// before daemonkit: the example configuration shipped then
// (testdata/example-v1.yaml, with the old "username" key) and the old Go
// flags, in the systemd unit's old forms (-config F -check-config, then
// -config F). Its addresses are overridden by the old flags so that
// everything stays on loopback; its ACL user for health checks exists on
// the redis-server.
func TestLegacyExampleConfigAndFlags(t *testing.T) {
	testenv.RequireBinary(t, "redis-server")
	dir := t.TempDir()
	bin := buildBinary(t)
	rport := testenv.FreePort(t)
	conf := filepath.Join(dir, "redis.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("port %d\nbind 127.0.0.1\nsave \"\"\ndir %s\n"+
		"user redisha-check on >change-me +ping +info\nuser default on nopass ~* &* +@all\n", rport, dir)), 0o644)
	redis := exec.Command("redis-server", conf)
	redis.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := redis.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { redis.Process.Kill(); redis.Wait() })

	example, err := filepath.Abs("testdata/example-v1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	listen := testenv.Addr("127.0.0.1", testenv.FreePort(t))
	roListen := testenv.Addr("127.0.0.1", testenv.FreePort(t))
	admin := testenv.Addr("127.0.0.1", testenv.FreePort(t))
	overrides := []string{"-listen", listen, "-read-only-listen", roListen, "-admin", admin,
		"-backends", fmt.Sprintf("127.0.0.1:%d", rport), "-sentinels", "", "-master-name", "mymaster",
		"-log-level", "debug", "-admin-pprof"}

	check := exec.Command(bin, append([]string{"-config", example, "-check-config"}, overrides...)...)
	out, err := check.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration ok") {
		t.Fatalf("-check-config: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "deprecated") {
		t.Errorf("-check-config printed no deprecation line:\n%s", out)
	}

	p := startProxy(t, admin, "/healthz 200 (the example's ACL user checks the backend)", bin, append([]string{"-config", example}, overrides...)...)
	conn, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := command(conn, bufio.NewReader(conn), "SET legacy 1"); got != "+OK" {
		t.Fatalf("through the proxy: %q", got)
	}
	r, err := http.Get("http://" + admin + "/debug/pprof/")
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("-admin-pprof: %v %v", err, r)
	}
	r.Body.Close()
	for _, want := range []string{"deprecated", "username", `"level":"DEBUG"`} {
		if !strings.Contains(p.logs.String(), want) {
			t.Errorf("logs lack %q", want)
		}
	}

	st, err := exec.Command(bin, "status", "--addr", admin).CombinedOutput()
	if err != nil || !strings.Contains(string(st), "routing to 127.0.0.1:") {
		t.Errorf("status: %v\n%s", err, st)
	}
	if v, err := exec.Command(bin, "version").CombinedOutput(); err != nil || len(v) == 0 {
		t.Errorf("version: %v %q", err, v)
	}

	conn.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit on SIGTERM")
	}
}
