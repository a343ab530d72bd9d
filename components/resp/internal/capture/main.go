// Command capture records real client and server traffic for the resp
// package's fuzz seeds and corpus tests: it starts a redis-server on loopback,
// puts a recording TCP relay in front of it, drives redis-cli, redis-benchmark
// and a few raw sessions (inline commands, RESP3 pushes, DEBUG PROTOCOL
// replies) through the relay, and writes what crossed it into testdata.
//
//	go run ./components/resp/internal/capture -out components/resp/testdata
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	out := flag.String("out", "testdata", "directory for the captured files")
	flag.Parse()
	if err := run(*out); err != nil {
		log.Fatal(err)
	}
}

// relay forwards one listener to the server and records both directions of
// every connection it carries.
type relay struct {
	ln     net.Listener
	server string

	mu       sync.Mutex
	requests bytes.Buffer
	replies  bytes.Buffer
	wg       sync.WaitGroup
}

func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go r.carry(c)
	}
}

// carry keeps one connection's bytes in order per direction and appends them
// to the recording when the connection ends, so that connections do not
// interleave in the files.
func (r *relay) carry(c net.Conn) {
	defer r.wg.Done()
	defer c.Close()
	s, err := net.Dial("tcp", r.server)
	if err != nil {
		log.Printf("relay: %v", err)
		return
	}
	defer s.Close()
	var req, rep bytes.Buffer
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.MultiWriter(c, &rep), s)
		_ = c.Close()
		close(done)
	}()
	_, _ = io.Copy(io.MultiWriter(s, &req), c)
	_ = s.(*net.TCPConn).CloseWrite()
	<-done
	r.mu.Lock()
	r.requests.Write(req.Bytes())
	r.replies.Write(rep.Bytes())
	r.mu.Unlock()
}

// take returns and clears what was recorded, once every connection has ended.
func (r *relay) take() (requests, replies []byte) {
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	requests = append([]byte(nil), r.requests.Bytes()...)
	replies = append([]byte(nil), r.replies.Bytes()...)
	r.requests.Reset()
	r.replies.Reset()
	return requests, replies
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func run(out string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	srv := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--enable-debug-command", "yes")
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	server := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", server); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server did not start on %s", server)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	r := &relay{ln: ln, server: server}
	go r.serve()
	rport := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	write := func(name string, b []byte) error {
		log.Printf("%s: %d bytes", name, len(b))
		return os.WriteFile(filepath.Join(out, name), b, 0o644)
	}

	// redis-cli, RESP2 and RESP3, one command per invocation as users run it.
	for _, proto := range []string{"2", "3"} {
		for _, args := range [][]string{
			{"PING"}, {"SET", "k", "v"}, {"GET", "k"}, {"INFO", "replication"},
			{"MSET", "a", "1", "b", "2 with spaces", "c", "line\r\nbreak"},
			{"HSET", "h", "f1", "v1", "f2", "v2"}, {"HGETALL", "h"}, {"INCRBYFLOAT", "f", "1.5"},
			{"ZADD", "z", "1", "one", "2.5", "two"}, {"ZRANGE", "z", "0", "-1", "WITHSCORES"},
			{"SADD", "s", "x", "y"}, {"SMEMBERS", "s"}, {"CLIENT", "INFO"}, {"EXISTS", "nokey"},
			{"GET", "nokey"}, {"LPOP", "nolist"}, {"CONFIG", "GET", "maxmemory*"}, {"NOSUCHCOMMAND", "x"},
			{"EVAL", "return {1,'two',{3}}", "0"}, {"MULTI"}, {"WAIT", "0", "10"},
		} {
			argv := append([]string{"-p", rport, "-" + proto}, args...)
			if outb, err := exec.Command("redis-cli", argv...).CombinedOutput(); err != nil {
				return fmt.Errorf("redis-cli %v: %v: %s", args, err, outb)
			}
		}
	}
	req, rep := r.take()
	if err := write("requests-redis-cli.bin", req); err != nil {
		return err
	}
	if err := write("replies-redis-cli.bin", rep); err != nil {
		return err
	}

	// redis-benchmark: pipelined, the proxy's hot path.
	bench := exec.Command("redis-benchmark", "-p", rport, "-c", "2", "-n", "16", "-P", "8", "-d", "24", "-r", "100",
		"-t", "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,mset", "-q")
	if outb, err := bench.CombinedOutput(); err != nil {
		return fmt.Errorf("redis-benchmark: %v: %s", err, outb)
	}
	req, rep = r.take()
	if err := write("requests-redis-benchmark.bin", req); err != nil {
		return err
	}
	if err := write("replies-redis-benchmark.bin", rep); err != nil {
		return err
	}

	// Raw sessions: inline commands as telnet and health checkers send them,
	// RESP3 pushes (pub/sub, client tracking) and every DEBUG PROTOCOL type.
	if err := session(rport, []string{
		"PING\r\n", "set greeting \"hello world\\x21\" \r\n", "GET greeting\n", "\r\n",
		"   \n", "ECHO 'it\\'s'\r\n", "info server\r\n", "QUIT\r\n",
	}); err != nil {
		return err
	}
	req, rep = r.take()
	if err := write("requests-inline.bin", req); err != nil {
		return err
	}
	if err := write("replies-inline.bin", rep); err != nil {
		return err
	}

	var cmds []string
	cmds = append(cmds, mb("HELLO", "3"), mb("CLIENT", "TRACKING", "on"), mb("GET", "tracked"))
	for _, t := range []string{"string", "integer", "double", "bignum", "null", "array", "set", "map",
		"attrib", "push", "verbatim", "true", "false"} {
		cmds = append(cmds, mb("DEBUG", "PROTOCOL", t))
	}
	cmds = append(cmds, mb("SET", "tracked", "1"), mb("SUBSCRIBE", "ch1", "ch2"), mb("PING"))
	if err := sessionWithPublish(rport, cmds, "ch1", "payload\r\nwith CRLF"); err != nil {
		return err
	}
	_, rep = r.take()
	if err := write("replies-redis-resp3-push.bin", rep); err != nil {
		return err
	}
	cmds = cmds[:0]
	for _, t := range []string{"string", "integer", "double", "bignum", "null", "array", "set", "map",
		"attrib", "push", "verbatim", "true", "false"} {
		cmds = append(cmds, mb("DEBUG", "PROTOCOL", t))
	}
	if err := session(rport, cmds); err != nil {
		return err
	}
	_, rep = r.take()
	return write("replies-redis-resp2-debug.bin", rep)
}

// mb encodes one multibulk request.
func mb(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// session sends each request with a pause, so that each reply comes back
// before the next request, then reads until the server is quiet.
func session(port string, reqs []string) error {
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, q := range reqs {
		if _, err := io.WriteString(c, q); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, _ = io.Copy(io.Discard, bufio.NewReader(c))
	return nil
}

// sessionWithPublish is session plus a PUBLISH from a second connection once
// the first has subscribed.
func sessionWithPublish(port string, reqs []string, channel, payload string) error {
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, q := range reqs {
		if _, err := io.WriteString(c, q); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	pub := exec.Command("redis-cli", "-p", port, "PUBLISH", channel, payload)
	if outb, err := pub.CombinedOutput(); err != nil {
		return fmt.Errorf("publish: %v: %s", err, outb)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, _ = io.Copy(io.Discard, bufio.NewReader(c))
	return nil
}
