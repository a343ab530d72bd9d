package lab

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

const sigintChildEnv = "REDISHA_LAB_SIGINT_CHILD"

// TestHelperSigintChild is the child process of TestTeardownOnSIGINT: it
// brings a lab up and waits to be interrupted. Without the variable it does
// nothing.
func TestHelperSigintChild(t *testing.T) {
	name := os.Getenv(sigintChildEnv)
	if name == "" {
		return
	}
	stack, err := LoadStack("reference")
	if err != nil {
		t.Fatal(err)
	}
	l, err := Up(context.Background(), stack, Params{}, Options{Name: name, LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("READY %s\n", l.Name)
	time.Sleep(2 * time.Minute)
	t.Fatal("not interrupted")
}

// Ctrl-C on a process that holds a lab tears the lab down before the
// process dies of the signal.
func TestTeardownOnSIGINT(t *testing.T) {
	upReferencePrereqs(t)
	name, _ := normalizeName("")
	testLabsMu.Lock()
	testLabs = append(testLabs, name)
	testLabsMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperSigintChild$", "-test.v")
	cmd.Env = append(os.Environ(), sigintChildEnv+"="+name)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "READY ") && !ok {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	if !<-ready {
		_ = cmd.Wait()
		t.Fatal("child never brought its lab up")
	}
	if left := leftoversOf([]string{name}); len(left) == 0 {
		t.Fatal("the child's lab is not visible")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !(ws.Signaled() && ws.Signal() == syscall.SIGINT) && ws.ExitStatus() != 130 {
		t.Errorf("child ended with %v, want death by SIGINT", err)
	}
	if left := leftoversOf([]string{name}); len(left) > 0 {
		t.Fatalf("leftovers after SIGINT: %v", left)
	}
}
