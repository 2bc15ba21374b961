package protocol

import (
	"errors"
	"fmt"
)

// Code classifies an [Error] so that scripts can act on it without parsing
// the message.
type Code string

// Error codes. They are part of the protocol: never renamed, only added.
const (
	CodeBadRequest         Code = "bad_request"         // the message could not be understood
	CodeTooLarge           Code = "too_large"           // the line exceeded MaxLineBytes
	CodeUnknownType        Code = "unknown_type"        // the message type is not known
	CodeUnsupportedVersion Code = "unsupported_version" // no common protocol version
	CodeNotHello           Code = "not_hello"           // a request came before hello
	CodeUnknownNode        Code = "unknown_node"        // no such node in the deployment
	CodeUnknownVerb        Code = "unknown_verb"        // no such action
	CodeUsage              Code = "usage"               // the verb's arguments are wrong
	CodeUnreachable        Code = "unreachable"         // the node's agent did not answer in time
	CodeRefused            Code = "refused"             // a safety rule forbids the action now
	CodeFailed             Code = "failed"              // the action was tried and did not succeed
	CodeUnauthorized       Code = "unauthorized"        // the caller may not do this
	CodeBusy               Code = "busy"                // another action holds what this one needs
	CodeInternal           Code = "internal"            // a bug; the message says where
)

// Error is a typed protocol error: what went wrong (Message) and what to do
// about it (Hint).
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Hint == "" {
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Hint)
}

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, hint, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Hint: hint}
}

// CodeOf returns the code of the first *Error in err's chain, or
// CodeInternal when err carries none, or "" for a nil err.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return CodeInternal
}

// AsError returns err as an *Error, wrapping an untyped error as
// CodeInternal so it can be sent on the wire.
func AsError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}
