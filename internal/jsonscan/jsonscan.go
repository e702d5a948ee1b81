// Package jsonscan is a one-pass JSON pull scanner for the hot webhook
// parsers (pushes): it reads the fields a decoder asks for and validates
// the rest, refusing what webhook.DecodeJSON refuses. Its errors are plain
// errors naming what is wrong and where: the HTTP front answers them 400.
package jsonscan

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Scanner reads a JSON document in one pass without building it, for
// the hot parsers (pushes): the decoder asks for the fields it uses, in
// document order, and skips the rest. Skipped values are still validated,
// so the scanner refuses what DecodeJSON refuses, with the same errors:
// an empty body, nesting deeper than MaxDepth, malformed JSON (same
// message and offset as encoding/json), and a field of the wrong type
// ("field %q: expected %s, got JSON %s", reported after the whole document
// was found well-formed, as encoding/json does). Keys match their field
// names as encoding/json matches them (exactly, else case-insensitively);
// when a key repeats, the decoder sees both and the last one wins.
//
// A decoder reads an object as
//
//	if s.Object("field") {
//		for s.NextKey() {
//			switch {
//			case s.KeyIs("name"):
//				v = s.String("field.name")
//			default:
//				s.Skip()
//			}
//		}
//	}
//
// and must read or Skip every value and iterate every object and array it
// enters to its end (NextKey or NextElem returning false). After an error
// every method is a no-op, so decoders need not check along the way; Err
// says how the document ended.
type Scanner struct {
	data    []byte
	pos     int
	depth   int
	first   bool   // no member read yet in the innermost object or array
	key     []byte // the current key, unescaped
	keyBuf  []byte // backing for keys with escapes
	err     error  // syntax or depth error: the scan stops
	typeErr error  // first value of the wrong type: the scan goes on
}

// Reset prepares s to scan body, which must stay unchanged until the scan
// ends; values returned as strings are copies.
func (s *Scanner) Reset(body []byte) {
	*s = Scanner{data: body, keyBuf: s.keyBuf[:0]}
	if len(bytes.TrimSpace(body)) == 0 {
		s.err = fmt.Errorf("empty body")
	}
}

// Err ends the scan: it checks that nothing but white space follows the
// top-level value and returns the first error, as DecodeJSON would.
func (s *Scanner) Err() error {
	if err := s.SyntaxErr(); err != nil {
		return err
	}
	return s.typeErr
}

// SyntaxErr ends the scan as Err does but leaves out type errors: it says
// whether the body is well-formed JSON, nested within MaxDepth.
func (s *Scanner) SyntaxErr() error {
	if s.err == nil {
		s.skipSpace()
		if s.pos < len(s.data) {
			s.syntaxError("after top-level value")
		}
	}
	return s.err
}

// ValueKind names the JSON type of the value at the scanner's position
// ("string", "number", "object", "array", "bool" or "null"; "" for none),
// for decoders that handle a field's type errors themselves.
func (s *Scanner) ValueKind() string {
	if !s.value() {
		return ""
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	case c == '-' || isDigit(c):
		return "number"
	}
	return ""
}

// Object enters the object at the scanner's position and reports whether
// it did: null is an absent object (false, no error), any other value is
// a type error on field (false).
func (s *Scanner) Object(field string) bool {
	return s.enter('{', field, "object")
}

// Array enters the array at the scanner's position, as Object does.
func (s *Scanner) Array(field string) bool {
	return s.enter('[', field, "array")
}

func (s *Scanner) enter(open byte, field, want string) bool {
	if !s.value() {
		return false
	}
	c := s.data[s.pos]
	if c == open {
		s.pos++
		s.depth++
		if s.depth > MaxDepth {
			s.fail(fmt.Errorf("JSON nested deeper than %d levels (at byte %d)", MaxDepth, s.pos-1))
			return false
		}
		s.first = true
		return true
	}
	s.mismatch(field, want)
	return false
}

// NextKey moves to the next member of the innermost object and reports
// whether there is one; its key is then matched with KeyIs and its value
// must be read or skipped. At the closing brace it returns false.
func (s *Scanner) NextKey() bool {
	if s.err != nil {
		return false
	}
	s.skipSpace()
	if s.pos >= len(s.data) {
		s.eof()
		return false
	}
	c := s.data[s.pos]
	if c == '}' && s.first {
		s.close()
		return false
	}
	if !s.first {
		switch c {
		case '}':
			s.close()
			return false
		case ',':
			s.pos++
			s.skipSpace()
			if s.pos >= len(s.data) {
				s.eof()
				return false
			}
			c = s.data[s.pos]
		default:
			s.syntaxError("after object key:value pair")
			return false
		}
	}
	if c != '"' {
		s.syntaxError("looking for beginning of object key string")
		return false
	}
	raw, escaped, ok := s.scanString()
	if !ok {
		return false
	}
	// Only escapes need decoding: a key with invalid UTF-8 matches no field
	// name, raw or with the replacement characters encoding/json puts in.
	if escaped {
		s.keyBuf = s.keyBuf[:0]
		var k string
		_ = json.Unmarshal(s.data[s.pos-len(raw)-2:s.pos], &k) // validated above
		s.keyBuf = append(s.keyBuf, k...)
		s.key = s.keyBuf
	} else {
		s.key = raw
	}
	s.skipSpace()
	if s.pos >= len(s.data) {
		s.eof()
		return false
	}
	if s.data[s.pos] != ':' {
		s.syntaxError("after object key")
		return false
	}
	s.pos++
	s.first = false
	return true
}

// KeyIs reports whether the current key names field, as encoding/json
// matches keys to field names.
func (s *Scanner) KeyIs(field string) bool {
	if string(s.key) == field {
		return true
	}
	// A key shorter than an ASCII field name cannot fold to it (the
	// non-ASCII runes that fold to ASCII letters, K and ſ, take more
	// bytes); most keys are told apart here, before case folding.
	if len(s.key) < len(field) || (len(s.key) > len(field) && isASCII(s.key)) {
		return false
	}
	return bytes.EqualFold(s.key, []byte(field))
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// NextElem moves to the next element of the innermost array and reports
// whether there is one; at the closing bracket it returns false.
func (s *Scanner) NextElem() bool {
	if s.err != nil {
		return false
	}
	s.skipSpace()
	if s.pos >= len(s.data) {
		s.eof()
		return false
	}
	c := s.data[s.pos]
	if c == ']' {
		s.close()
		return false
	}
	if !s.first {
		if c != ',' {
			s.syntaxError("after array element")
			return false
		}
		s.pos++
	}
	s.first = false
	return true
}

func (s *Scanner) close() {
	s.pos++
	s.depth--
	s.first = false
}

// String reads a string value; null is "". Another type is a type error on
// field.
func (s *Scanner) String(field string) string {
	raw, ok := s.StringBytes(field)
	if !ok {
		return ""
	}
	return string(raw)
}

// StringBytes reads a string value without copying it when it has no
// escapes (the slice is valid until the scanner's body changes); ok is
// false for null, another type or an error.
func (s *Scanner) StringBytes(field string) (raw []byte, ok bool) {
	if !s.value() {
		return nil, false
	}
	if s.data[s.pos] != '"' {
		if !s.null() {
			s.mismatch(field, "string")
		}
		return nil, false
	}
	start := s.pos
	raw, escaped, ok := s.scanString()
	if !ok {
		return nil, false
	}
	if escaped || !utf8.Valid(raw) {
		// Rare: let encoding/json unescape (and replace invalid UTF-8) so
		// that the value is exactly what it would have decoded.
		var v string
		_ = json.Unmarshal(s.data[start:s.pos], &v)
		return []byte(v), true
	}
	return raw, true
}

// AppendString reads a string value as StringBytes does, but a value with
// escapes is unescaped onto dst instead of into a new allocation (commit
// messages nearly always have some: their line breaks). It returns dst,
// grown or not, and the value, which is in dst or in the body.
func (s *Scanner) AppendString(dst []byte, field string) (out, v []byte, ok bool) {
	if !s.value() {
		return dst, nil, false
	}
	if s.data[s.pos] != '"' {
		if !s.null() {
			s.mismatch(field, "string")
		}
		return dst, nil, false
	}
	start := s.pos
	raw, escaped, ok := s.scanString()
	if !ok {
		return dst, nil, false
	}
	if !escaped && utf8.Valid(raw) {
		return dst, raw, true
	}
	from := len(dst)
	if escaped && utf8.Valid(raw) {
		// The escapes other than \u map to one byte each; a \u escape
		// (surrogates, invalid code points) is left to encoding/json.
		simple := true
		for i := 0; i < len(raw) && simple; i++ {
			c := raw[i]
			if c != '\\' {
				dst = append(dst, c)
				continue
			}
			i++
			switch raw[i] {
			case 'n':
				dst = append(dst, '\n')
			case 't':
				dst = append(dst, '\t')
			case 'r':
				dst = append(dst, '\r')
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case '"', '\\', '/':
				dst = append(dst, raw[i])
			default:
				simple = false
			}
		}
		if simple {
			return dst, dst[from:], true
		}
		dst = dst[:from]
	}
	var str string
	_ = json.Unmarshal(s.data[start:s.pos], &str) // validated above
	dst = append(dst, str...)
	return dst, dst[from:], true
}

// Bool reads a boolean value; null is false.
func (s *Scanner) Bool(field string) bool {
	if !s.value() {
		return false
	}
	switch s.data[s.pos] {
	case 't':
		return s.literal("true")
	case 'f':
		s.literal("false")
		return false
	case 'n':
		s.literal("null")
		return false
	}
	s.mismatch(field, "bool")
	return false
}

// Int64 reads an integer value; null is 0. A number that is not an int64
// is a type error on field, as it is for encoding/json.
func (s *Scanner) Int64(field string) int64 { return s.integer(field, "int64", 64) }

// Int reads an integer value into an int.
func (s *Scanner) Int(field string) int { return int(s.integer(field, "int", strconv.IntSize)) }

func (s *Scanner) integer(field, goType string, bits int) int64 {
	if !s.value() {
		return 0
	}
	c := s.data[s.pos]
	if c != '-' && (c < '0' || c > '9') {
		if !s.null() {
			s.mismatch(field, goType)
		}
		return 0
	}
	start := s.pos
	if !s.scanNumber() {
		return 0
	}
	num := s.data[start:s.pos]
	n, err := strconv.ParseInt(string(num), 10, bits)
	if err != nil && s.typeErr == nil {
		s.typeErr = fmt.Errorf("field %q: expected %s, got JSON number %s", field, goType, num)
	}
	return n
}

// Skip validates and passes over the value at the scanner's position.
func (s *Scanner) Skip() {
	if !s.value() {
		return
	}
	switch c := s.data[s.pos]; c {
	case '{':
		if s.Object("") {
			for s.NextKey() {
				s.Skip()
			}
		}
	case '[':
		if s.Array("") {
			for s.NextElem() {
				s.Skip()
			}
		}
	case '"':
		s.scanString()
	case 't':
		s.literal("true")
	case 'f':
		s.literal("false")
	case 'n':
		s.literal("null")
	default:
		if c == '-' || ('0' <= c && c <= '9') {
			s.scanNumber()
			return
		}
		s.syntaxError("looking for beginning of value")
	}
}

// value moves to the start of a value and reports whether there is one.
func (s *Scanner) value() bool {
	if s.err != nil {
		return false
	}
	s.skipSpace()
	if s.pos >= len(s.data) {
		s.eof()
		return false
	}
	return true
}

// Null passes over a null value and reports whether there was one; for
// decoders that must tell null (encoding/json leaves the field as it was)
// from false or 0.
func (s *Scanner) Null() bool {
	return s.value() && s.null()
}

// null consumes the null literal at the position, if a value starting
// with n is there (a misspelled null is a syntax error).
func (s *Scanner) null() bool {
	if s.data[s.pos] != 'n' {
		return false
	}
	s.literal("null")
	return true
}

// mismatch records a type error for the value at the position (the first
// one wins) and skips the value.
func (s *Scanner) mismatch(field, want string) {
	if s.err != nil {
		return
	}
	got := s.ValueKind()
	if got == "" || got == "null" { // not a value at all (null never is a mismatch)
		s.Skip()
		return
	}
	if s.typeErr == nil {
		s.typeErr = fmt.Errorf("field %q: expected %s, got JSON %s", field, want, got)
	}
	s.Skip()
}

func (s *Scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// scanString passes over the string starting at the position (a quote)
// and returns its raw content and whether it has escapes.
func (s *Scanner) scanString() (raw []byte, escaped, ok bool) {
	start := s.pos + 1
	i := start
	data := s.data
	for {
		// Find the next byte that ends or interrupts plain text: eight
		// bytes at a time while none of them is a quote, a backslash or a
		// control character, then byte by byte.
		for i+8 <= len(data) {
			w := binary.LittleEndian.Uint64(data[i:])
			if hasZeroByte(w^(ones*'"'))|hasZeroByte(w^(ones*'\\'))|hasByteLess(w, 0x20) != 0 {
				break
			}
			i += 8
		}
		for i < len(data) && !stringStop[data[i]] {
			i++
		}
		if i >= len(data) {
			s.pos = len(data)
			s.eof()
			return nil, false, false
		}
		switch c := data[i]; {
		case c == '"':
			s.pos = i + 1
			return data[start:i], escaped, true
		case c == '\\':
			escaped = true
			i++
			if i >= len(data) {
				s.eofIn("in string escape code")
				return nil, false, false
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for k := 0; k < 4; k++ {
					if i >= len(data) {
						s.eofIn("in \\u hexadecimal character escape")
						return nil, false, false
					}
					if !isHex(data[i]) {
						s.pos = i
						s.syntaxError("in \\u hexadecimal character escape")
						return nil, false, false
					}
					i++
				}
			default:
				s.pos = i
				s.syntaxError("in string escape code")
				return nil, false, false
			}
		default: // a control character
			s.pos = i
			s.syntaxError("in string literal")
			return nil, false, false
		}
	}
}

const ones = 0x0101010101010101

// hasZeroByte is nonzero when a byte of w is zero.
func hasZeroByte(w uint64) uint64 { return (w - ones) & ^w & (ones * 0x80) }

// hasByteLess is nonzero when a byte of w is less than n (n <= 128).
func hasByteLess(w uint64, n byte) uint64 { return (w - ones*uint64(n)) & ^w & (ones * 0x80) }

// stringStop marks the bytes that end plain text in a string.
var stringStop = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scanNumber passes over a number with JSON's grammar.
func (s *Scanner) scanNumber() bool {
	data := s.data
	i := s.pos
	if data[i] == '-' {
		i++
		if i >= len(data) {
			s.eofIn("in numeric literal")
			return false
		}
		if !isDigit(data[i]) {
			s.pos = i
			s.syntaxError("in numeric literal")
			return false
		}
	}
	if data[i] == '0' {
		i++
	} else {
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) {
			s.eofIn("after decimal point in numeric literal")
			return false
		}
		if !isDigit(data[i]) {
			s.pos = i
			s.syntaxError("after decimal point in numeric literal")
			return false
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) {
			s.eofIn("in exponent of numeric literal")
			return false
		}
		if !isDigit(data[i]) {
			s.pos = i
			s.syntaxError("in exponent of numeric literal")
			return false
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	s.pos = i
	return true
}

// literal passes over true, false or null and reports whether it was
// there.
func (s *Scanner) literal(word string) bool {
	for k := 0; k < len(word); k++ {
		if s.pos >= len(s.data) {
			if k == 0 {
				s.eof()
			} else {
				s.eofIn("in literal " + word + " (expecting " + quoteChar(word[k]) + ")")
			}
			return false
		}
		if s.data[s.pos] != word[k] {
			if k == 0 {
				s.syntaxError("looking for beginning of value")
			} else {
				s.syntaxError("in literal " + word + " (expecting " + quoteChar(word[k]) + ")")
			}
			return false
		}
		s.pos++
	}
	return true
}

// syntaxError stops the scan at the byte at the position, with
// encoding/json's wording and offset.
func (s *Scanner) syntaxError(context string) {
	s.fail(fmt.Errorf("malformed JSON at byte %d: invalid character %s %s", s.pos+1, quoteChar(s.data[s.pos]), context))
}

// eofIn is the end of the body inside a token that cannot end there:
// encoding/json reports it as an invalid space (it feeds one at the end).
func (s *Scanner) eofIn(context string) {
	s.fail(fmt.Errorf("malformed JSON at byte %d: invalid character ' ' %s", len(s.data), context))
}

func (s *Scanner) eof() {
	s.fail(fmt.Errorf("malformed JSON at byte %d: unexpected end of JSON input", len(s.data)))
}

// fail stops the scan. A document nested too deep is refused for its depth
// whatever else is wrong with it, as DecodeJSON refuses it before parsing.
func (s *Scanner) fail(err error) {
	if s.err != nil {
		return
	}
	if derr := CheckDepth(s.data, MaxDepth); derr != nil {
		err = derr
	}
	s.err = err
	s.pos = len(s.data)
}

// quoteChar formats c as encoding/json does in its syntax errors.
func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	q := strconv.Quote(string(c))
	return "'" + q[1:len(q)-1] + "'"
}

// MaxDepth bounds the nesting of accepted JSON bodies: no real payload
// nests deeper, and deep nesting is a cheap way to burn CPU and stack.
const MaxDepth = 64

// CheckDepth refuses JSON nested deeper than max, without decoding it;
// decoders that recurse (encoding/json, OTLP/JSON) are safe behind it.
func CheckDepth(body []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for i, c := range body {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return fmt.Errorf("JSON nested deeper than %d levels (at byte %d)", max, i)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}
