package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
				if ran == "" {
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
	fence      = regexp.MustCompile("(?s)```[a-z]*\n(.*?)```")
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
	for _, block := range fence.FindAllStringSubmatch(md, -1) {
		body := strings.ReplaceAll(block[1], "\\\n", " ")
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
