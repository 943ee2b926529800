package mcpserver

import (
	"unicode/utf8"
)

// Size budgets of one result.
const (
	// MaxRawOutput caps what a command may send (stdout and stderr
	// together) before any encoding.
	MaxRawOutput = 1 << 20
	// MaxEncodedPayload bounds the encoded size of a result's payload
	// (output, file content) as it travels: JSON-escaped once in the
	// structured content and once more inside the text block.
	MaxEncodedPayload = 4 << 20
	// MaxReadFile is the largest file read_file returns (base64 of it
	// fits MaxEncodedPayload: 4/3 growth, twice).
	MaxReadFile = 1536 << 10
)

// escapedLen is the length of r JSON-encoded by encoding/json inside a
// string (which escapes <, > and & too); an invalid byte becomes U+FFFD.
func escapedLen(r rune, size int) int {
	switch {
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t':
		return 2
	case r < 0x20 || r == '<' || r == '>' || r == '&' || r == 0x2028 || r == 0x2029:
		return 6
	case r == utf8.RuneError && size == 1:
		return 3 // becomes U+FFFD
	default:
		return size
	}
}

// wireCost is what r costs in a result: escaped in the structured content,
// and that escape escaped again in the text block.
func wireCost(r rune, size int) int {
	e := escapedLen(r, size)
	switch {
	case r == '"' || r == '\\':
		return e + 4 // \" becomes \\\"
	case r == '\n' || r == '\r' || r == '\t':
		return e + 3 // \n becomes \\n
	case e == 6:
		return e + 7 // \u0000 becomes \\u0000
	default:
		return 2 * e
	}
}

// capText returns the longest prefix of b, as valid UTF-8 text, whose wire
// cost fits budget, the cost, and whether anything was cut.
func capText(b []byte, budget int) (string, int, bool) {
	cost := 0
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		c := wireCost(r, size)
		if cost+c > budget {
			return toValidUTF8(b[:i]), cost, true
		}
		cost += c
		i += size
	}
	return toValidUTF8(b), cost, false
}

// toValidUTF8 replaces invalid bytes with U+FFFD, as encoding/json would.
func toValidUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]rune, 0, len(b))
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		out = append(out, r)
		i += size
	}
	return string(out)
}

// capOutput caps stdout and stderr so that together they fit
// MaxEncodedPayload on the wire; stdout gets what stderr leaves, stderr at
// least a quarter.
func capOutput(stdout, stderr []byte) (string, string, bool) {
	errS, errCost, cut1 := capText(stderr, MaxEncodedPayload/4)
	outS, _, cut2 := capText(stdout, MaxEncodedPayload-errCost)
	return outS, errS, cut1 || cut2
}
