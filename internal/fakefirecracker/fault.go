package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// fault is an API error: the fake answers 400 with {"fault_message": msg}.
type fault struct{ msg string }

func (f *fault) Error() string { return f.msg }

func faultf(format string, args ...any) error { return &fault{msg: fmt.Sprintf(format, args...)} }

// Fault messages Firecracker uses for the state rules.
const (
	msgNotSupportedPostBoot = "The requested operation is not supported after starting the microVM."
	msgNotSupportedPreBoot  = "The requested operation is not supported before starting the microVM."
	msgIDMismatch           = "The id from the path does not match the id from the body!"
)

// decodeStrict decodes body into v the way Firecracker's serde models do:
// unknown fields, bad types and trailing data are errors.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return deserializeFault(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return deserializeFault(errors.New("trailing characters after the JSON value"))
	}
	return nil
}

func deserializeFault(err error) error {
	return faultf("An error occurred when deserializing the json body of a request: %v.", err)
}

// missingField is serde's error for an absent required field.
func missingField(name string) error {
	return deserializeFault(fmt.Errorf("missing field `%s`", name))
}

// require returns the error for the first absent field, in order.
func require(fields ...requiredField) error {
	for _, f := range fields {
		if !f.present {
			return missingField(f.name)
		}
	}
	return nil
}

type requiredField struct {
	name    string
	present bool
}

func field[T any](name string, p *T) requiredField {
	return requiredField{name: name, present: p != nil}
}

// checkEnum rejects a value outside the allowed set, as serde does for enums.
func checkEnum(name string, p *string, allowed ...string) error {
	if p == nil {
		return nil
	}
	for _, a := range allowed {
		if *p == a {
			return nil
		}
	}
	return deserializeFault(fmt.Errorf("unknown variant `%s` for `%s`, expected one of %q", *p, name, allowed))
}

func checkRateLimiter(rl *rateLimiter) error {
	if rl == nil {
		return nil
	}
	for _, tb := range []*tokenBucket{rl.Bandwidth, rl.Ops} {
		if tb == nil {
			continue
		}
		if err := require(field("size", tb.Size), field("refill_time", tb.RefillTime)); err != nil {
			return err
		}
	}
	return nil
}

// checkID applies Firecracker's rule for device ids.
func checkID(id string) error {
	if id == "" || len(id) > 64 {
		return faultf("Invalid ID: the ID must be between 1 and 64 characters long: %q", id)
	}
	for _, r := range id {
		if r != '_' && !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return faultf("Invalid ID: the ID contains invalid characters (only alphanumerics and '_' are allowed): %q", id)
		}
	}
	return nil
}
