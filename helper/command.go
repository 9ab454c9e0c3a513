package helper

import (
	"errors"
	"fmt"
	"strings"
)

// Commands git sends a helper on its stdin, one per line
// (gitremote-helpers(7), "COMMANDS").
const (
	VerbCapabilities = "capabilities"
	VerbOption       = "option"
	VerbConnect      = "connect"
)

// MaxCommandLine caps one command line from git, newline excluded; a
// longer line is refused before it is buffered whole.
const MaxCommandLine = 64 << 10

// ErrUnknownCommand is wrapped by the error for a command this helper
// does not implement.
var ErrUnknownCommand = errors.New("unknown command")

// ErrMalformedCommand is wrapped by the error for a known command with
// bad arguments.
var ErrMalformedCommand = errors.New("malformed command")

// Command is one line git sends a helper. The zero Command is the blank
// line that ends the session.
type Command struct {
	Verb  string // VerbCapabilities, VerbOption, VerbConnect, or "" for the blank line
	Name  string // option name, or the service to connect to
	Value string // option value; may hold spaces
}

// ParseCommand parses one command line, without its newline.
func ParseCommand(line string) (Command, error) {
	if len(line) > MaxCommandLine {
		return Command{}, fmt.Errorf("%w: line of %d bytes exceeds %d", ErrMalformedCommand, len(line), MaxCommandLine)
	}
	verb, rest, hasArgs := strings.Cut(line, " ")
	switch verb {
	case "":
		if line != "" {
			return Command{}, fmt.Errorf("%w: %q", ErrMalformedCommand, line)
		}
		return Command{}, nil
	case VerbCapabilities:
		if hasArgs {
			return Command{}, fmt.Errorf("%w: capabilities takes no argument", ErrMalformedCommand)
		}
		return Command{Verb: verb}, nil
	case VerbOption:
		// option <name> <value>
		name, value, ok := strings.Cut(rest, " ")
		if !hasArgs || !ok || name == "" {
			return Command{}, fmt.Errorf("%w: want \"option <name> <value>\", got %q", ErrMalformedCommand, line)
		}
		return Command{Verb: verb, Name: name, Value: value}, nil
	case VerbConnect:
		// connect <service>
		if !hasArgs || rest == "" || strings.Contains(rest, " ") {
			return Command{}, fmt.Errorf("%w: want \"connect <service>\", got %q", ErrMalformedCommand, line)
		}
		return Command{Verb: verb, Name: rest}, nil
	}
	return Command{}, fmt.Errorf("%w: %q", ErrUnknownCommand, verb)
}

// String renders the command as git sends it, without the newline.
func (c Command) String() string {
	switch c.Verb {
	case VerbOption:
		return c.Verb + " " + c.Name + " " + c.Value
	case VerbConnect:
		return c.Verb + " " + c.Name
	}
	return c.Verb
}
