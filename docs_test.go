package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// TestDocumentedCommandLines parses every smartmeters command line that
// README.md and docs/*.md show, in code blocks and in inline code, with the
// real command line whose actions do nothing: each must name a command and
// use only flags that command takes, where it puts them.
func TestDocumentedCommandLines(t *testing.T) {
	files, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"README.md"}, files...)
	n := 0
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range documentedCommandLines(string(text)) {
			n++
			t.Run(file+"/"+line, func(t *testing.T) {
				args, err := shellWords(line)
				if err != nil {
					t.Fatal(err)
				}
				ran, err := parseOnly(args)
				if err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				if ran == "" && !slices.Contains([]string{"--version", "--help"}, args[len(args)-1]) {
					t.Fatalf("%s: runs no command", line)
				}
			})
		}
	}
	if n < 20 {
		t.Fatalf("found only %d command lines in the docs; is the extraction broken?", n)
	}
}

var (
	inlineCode = regexp.MustCompile("`((?:smartmeters|go run \\.) [^`|]*)`")
	envAssign  = regexp.MustCompile(`^(\w+=\S*\s+)+`)
)

// documentedCommandLines returns the smartmeters command lines of a
// Markdown text, as argument strings starting with "smartmeters": the
// lines of its code blocks that run it (after a "$ " prompt, variable
// assignments, or in a chain with && and ;), and its inline code that does.
func documentedCommandLines(md string) []string {
	var lines []string
	add := func(cmd string) {
		cmd = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(cmd), "&"))
		cmd = strings.TrimPrefix(cmd, "$ ")
		cmd = envAssign.ReplaceAllString(cmd, "")
		for _, prefix := range []string{"smartmeters ", "/tmp/smartmeters ", "go run . "} {
			if rest, ok := strings.CutPrefix(cmd, prefix); ok {
				lines = append(lines, "smartmeters "+rest)
			}
		}
	}
	for _, block := range codeBlock.FindAllStringSubmatch(md, -1) {
		body := strings.ReplaceAll(block[2], "\\\n", " ")
		for _, line := range strings.Split(body, "\n") {
			if i := strings.Index(line, " #"); i >= 0 {
				line = line[:i]
			}
			for _, part := range regexp.MustCompile(`&&|;`).Split(line, -1) {
				add(part)
			}
		}
	}
	for _, m := range inlineCode.FindAllStringSubmatch(md, -1) {
		add(strings.Join(strings.Fields(m[1]), " "))
	}
	return lines
}

// shellWords splits a command line as sh would, for the quoting the docs
// use: single and double quotes, no expansion.
func shellWords(line string) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, io.ErrUnexpectedEOF
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

// parseOnly runs args through the real command line with every action
// replaced by one that records the command's full name, and returns it.
func parseOnly(args []string) (string, error) {
	app := newApp(io.Discard, io.Discard)
	var ran string
	var stub func(cmds []*cli.Command)
	stub = func(cmds []*cli.Command) {
		for _, cmd := range cmds {
			cmd.Before, cmd.After = nil, nil
			if cmd.Action != nil {
				cmd.Action = func(c *cli.Context) error {
					ran = c.Command.FullName()
					return nil
				}
			}
			stub(cmd.Subcommands)
		}
	}
	stub(app.Commands)
	err := app.Run(args)
	return ran, err
}

// TestDocExamples runs the shell examples of docs/reporting.md and
// docs/key-lifecycle.md as written, in order, in one shell, against a fresh
// `smartmeters demo` (the docs' listener addresses replaced by the demo's),
// with the smartmeters binary on PATH: every command must succeed. The
// output the docs show for `verify` must be what it prints, up to the
// values that differ from run to run.
func TestDocExamples(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the examples need %s: %v", tool, err)
		}
	}
	bin := buildBinary(t)
	public, admin := startDemo(t, bin)

	var script []string
	var verifyOutput string
	for _, file := range []string{"docs/reporting.md", "docs/key-lifecycle.md"} {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		blocks := codeBlock.FindAllStringSubmatch(string(text), -1)
		for i, b := range blocks {
			lang, body := b[1], b[2]
			if lang != "sh" || strings.Contains(body, "curl -N") || strings.Contains(body, "go test") {
				continue // not a shell example, or one that runs until stopped
			}
			script = append(script, body)
			if strings.Contains(body, "smartmeters verify") && i+1 < len(blocks) && blocks[i+1][1] == "" {
				verifyOutput = blocks[i+1][2]
			}
		}
	}
	if verifyOutput == "" {
		t.Fatal("docs/reporting.md shows no output of smartmeters verify")
	}
	replacer := strings.NewReplacer("http://127.0.0.1:8081", admin, "http://localhost:8080", public)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", replacer.Replace(strings.Join(script, "\n")))
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the examples failed: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	var got []string
	for _, line := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(line, "meter-1.csv: ") {
			got = append(got, line)
		}
	}
	if want, have := runValues(verifyOutput), runValues(strings.Join(got, "\n")+"\n"); want != have {
		t.Errorf("smartmeters verify printed\n%s\nwhich docs/reporting.md should show; it shows\n%s", strings.Join(got, "\n"), verifyOutput)
	}
}

var (
	codeBlock = regexp.MustCompile("(?ms)^ *```([a-z]*)\n(.*?)^ *```")
	runValue  = regexp.MustCompile(`[0-9a-f]{64}|meter-[0-9a-z]{10}|\d+`)
)

// runValues replaces the values of text that differ from run to run
// (numbers, usernames, fingerprints) with #.
func runValues(text string) string {
	return runValue.ReplaceAllString(text, "#")
}

// buildBinary builds smartmeters into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "smartmeters")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startDemo starts `smartmeters demo --keep` with a few meters, waits until
// its simulation is over, and returns its listeners' base URLs. It is
// interrupted when the test ends.
func startDemo(t *testing.T, bin string) (public, admin string) {
	t.Helper()
	cmd := exec.Command(bin, "demo", "--meters", "3", "--readings", "3", "--interval", "100ms", "--key-type", "ed25519", "--keep")
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	addresses := regexp.MustCompile(`^api +public (\S+), admin (\S+)$`)
	ready := make(chan error, 1)
	go func() {
		var printed []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			printed = append(printed, line)
			if m := addresses.FindStringSubmatch(line); m != nil {
				public, admin = m[1], m[2]
			}
			if strings.HasPrefix(line, "serving ") {
				ready <- nil
				io.Copy(io.Discard, out)
				return
			}
		}
		ready <- fmt.Errorf("demo ended before serving:\n%s", strings.Join(printed, "\n"))
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("%v\nstderr: %s", err, &stderr)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("demo not serving after 2 minutes")
	}
	return public, admin
}
