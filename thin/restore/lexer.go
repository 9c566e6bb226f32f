package restore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// The lexer turns the input into the few tokens of thin_dump's XML: start,
// end and empty-element tags with their attributes. Whitespace between
// tags, comments and one XML declaration at the very start are skipped;
// anything else (text, CDATA, DOCTYPE, processing instructions) is an
// error. It reads the input in large chunks and never allocates per tag:
// attribute values are slices of its buffer, valid until the next token.

const (
	// chunkSize is how much input is read at a time.
	chunkSize = 1 << 20
	// lookahead is how many bytes are made available before a tag is
	// scanned, so that nearly every tag is scanned in one pass.
	lookahead = 4096
	// maxTag is the longest tag accepted, in bytes.
	maxTag = 1 << 16
	// maxAttrs is the most attributes a tag may have (every element of
	// the grammar has at most eight).
	maxAttrs = 16
)

// tokKind is the kind of a token.
type tokKind uint8

const (
	tokEOF   tokKind = iota
	tokStart         // <name attr="v">
	tokEmpty         // <name attr="v"/>
	tokEnd           // </name>
)

// element identifies the known element names.
type element uint8

const (
	elSuperblock element = iota
	elDevice
	elDef
	elRef
	elSingle
	elRange
)

var elementNames = [...]string{
	elSuperblock: "superblock",
	elDevice:     "device",
	elDef:        "def",
	elRef:        "ref",
	elSingle:     "single_mapping",
	elRange:      "range_mapping",
}

func (e element) String() string { return elementNames[e] }

// lookupElement maps a tag name to an element.
func lookupElement(name []byte) (element, bool) {
	switch string(name) {
	case "superblock":
		return elSuperblock, true
	case "device":
		return elDevice, true
	case "def":
		return elDef, true
	case "ref":
		return elRef, true
	case "single_mapping":
		return elSingle, true
	case "range_mapping":
		return elRange, true
	}
	return 0, false
}

// attr is one attribute of the current tag: the offsets of its name and
// value in the buffer (offsets, not slices, so that storing one costs no
// write barrier).
type attr struct {
	ns, ne, vs, ve int32
}

// attrName and attrValue return attribute i of the current tag; the slices
// alias the buffer.
func (l *lexer) attrName(i int) []byte {
	a := &l.attrs[i]
	return l.buf[a.ns:a.ne]
}

func (l *lexer) attrValue(i int) []byte {
	a := &l.attrs[i]
	return l.buf[a.vs:a.ve]
}

// errNeedMore is returned internally when a tag runs past the end of the
// buffered input.
var errNeedMore = errors.New("need more input")

type lexer struct {
	r    io.Reader
	buf  []byte
	pos  int   // next unread byte
	end  int   // end of the valid bytes in buf
	base int64 // input offset of buf[0]
	eof  bool  // r is exhausted
	rerr error // read error other than io.EOF

	line    int64 // line of buf[pos], from 1
	started bool  // a token other than the XML declaration was seen

	// The current token.
	kind    tokKind
	elem    element
	tagLine int64 // line where the current tag starts
	attrs   [maxAttrs]attr
	nattrs  int

	progress func(done int64)
}

func newLexer(r io.Reader, progress func(int64)) *lexer {
	return &lexer{r: r, buf: make([]byte, chunkSize+maxTag), line: 1, progress: progress}
}

// offset returns the input offset of the next unread byte.
func (l *lexer) offset() int64 { return l.base + int64(l.pos) }

// errorf returns an *InputError at line.
func (l *lexer) errorf(line int64, format string, args ...any) error {
	return &InputError{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// fill makes at least need bytes available after pos, unless the input
// ends first. It moves the unread bytes to the front of the buffer.
func (l *lexer) fill(need int) error {
	if l.end-l.pos >= need || l.eof {
		return l.rerr
	}
	if l.pos > 0 {
		n := copy(l.buf, l.buf[l.pos:l.end])
		l.base += int64(l.pos)
		l.pos, l.end = 0, n
	}
	if need > len(l.buf) {
		need = len(l.buf)
	}
	for l.end < need && !l.eof {
		// Read whole chunks when there is room, so refills are rare.
		n, err := l.r.Read(l.buf[l.end:])
		l.end += n
		if err == io.EOF {
			l.eof = true
		} else if err != nil {
			l.eof = true
			l.rerr = fmt.Errorf("reading input: %w", err)
		} else if n == 0 {
			continue
		}
	}
	if l.progress != nil {
		l.progress(l.base + int64(l.end))
	}
	return l.rerr
}

// next reads the next token. At the end of the input it returns tokEOF.
func (l *lexer) next() error {
	for {
		if l.end-l.pos < lookahead {
			if err := l.fill(lookahead); err != nil {
				return err
			}
		}
		// Skip whitespace.
		p, line := l.pos, l.line
		for p < l.end {
			c := l.buf[p]
			if c == '\n' {
				line++
			} else if c != ' ' && c != '\t' && c != '\r' {
				break
			}
			p++
		}
		l.pos, l.line = p, line
		if p == l.end {
			if l.eof {
				l.kind = tokEOF
				return nil
			}
			continue // all whitespace: read more
		}
		if l.end-p < lookahead && !l.eof {
			continue // read more before looking at the markup
		}
		if l.buf[p] != '<' {
			if !l.started && l.offset() == 0 && bytes.HasPrefix(l.buf[p:l.end], []byte("\xef\xbb\xbf")) {
				l.pos += 3 // a UTF-8 byte order mark
				continue
			}
			return l.errorf(l.line, "unexpected text %q (only elements, whitespace and comments are allowed)", snippet(l.buf[p:l.end]))
		}
		if p+1 < l.end {
			switch l.buf[p+1] {
			case '!':
				if err := l.skipComment(); err != nil {
					return err
				}
				l.started = true
				continue
			case '?':
				if err := l.skipDeclaration(); err != nil {
					return err
				}
				continue
			}
		}
		l.started = true
		return l.tag()
	}
}

// skipComment skips a comment starting at pos; other <! constructs are
// errors.
func (l *lexer) skipComment() error {
	start := l.line
	if err := l.fill(4); err != nil {
		return err
	}
	if !bytes.HasPrefix(l.buf[l.pos:l.end], []byte("<!--")) {
		return l.errorf(start, "unsupported markup %q (CDATA sections and DOCTYPE are not allowed)", snippet(l.buf[l.pos:l.end]))
	}
	l.pos += 4
	return l.skipUntil([]byte("-->"), start, "comment")
}

// skipDeclaration skips the XML declaration, which may only open the input.
func (l *lexer) skipDeclaration() error {
	start := l.line
	if err := l.fill(6); err != nil {
		return err
	}
	rest := l.buf[l.pos:l.end]
	if l.started || l.offset() > 3 || !bytes.HasPrefix(rest, []byte("<?xml")) || len(rest) < 6 || !isSpace(rest[5]) {
		return l.errorf(start, "unexpected processing instruction %q (only an XML declaration at the start is allowed)", snippet(rest))
	}
	l.started = true
	l.pos += 5
	return l.skipUntil([]byte("?>"), start, "XML declaration")
}

// skipUntil skips input up to and including delim, counting lines.
func (l *lexer) skipUntil(delim []byte, start int64, what string) error {
	for {
		avail := l.buf[l.pos:l.end]
		if i := bytes.Index(avail, delim); i >= 0 {
			l.line += int64(bytes.Count(avail[:i], []byte{'\n'}))
			l.pos += i + len(delim)
			return nil
		}
		if l.eof {
			return l.errorf(start, "unterminated %s", what)
		}
		// Keep the last bytes: delim may straddle the refill.
		keep := min(len(delim)-1, len(avail))
		l.line += int64(bytes.Count(avail[:len(avail)-keep], []byte{'\n'}))
		l.pos = l.end - keep
		if err := l.fill(lookahead); err != nil {
			return err
		}
	}
}

// tag scans the tag starting at pos. A tag that runs past the buffered
// input is scanned again once more input is read.
func (l *lexer) tag() error {
	need := lookahead
	for {
		line := l.line
		err := l.scanTag()
		if err != errNeedMore {
			return err
		}
		l.line = line
		if l.eof || l.end-l.pos >= maxTag {
			if l.eof {
				return l.errorf(l.line, "unexpected end of input inside a tag")
			}
			return l.errorf(l.line, "tag longer than %d bytes", maxTag)
		}
		need = min(2*max(need, l.end-l.pos), maxTag)
		if err := l.fill(need); err != nil {
			return err
		}
	}
}

// Character classes of the ASCII subset of XML that the grammar uses.
const (
	clSpace     = 1 << iota // space, tab, CR, LF
	clNameStart             // may start a name
	clName                  // may continue a name
)

var charClass = func() (t [256]uint8) {
	for _, c := range []byte(" \t\r\n") {
		t[c] = clSpace
	}
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':':
			t[c] = clNameStart | clName
		case c >= '0' && c <= '9', c == '-', c == '.':
			t[c] = clName
		}
	}
	return t
}()

func isSpace(c byte) bool     { return charClass[c]&clSpace != 0 }
func isNameStart(c byte) bool { return charClass[c]&clNameStart != 0 }
func isNameChar(c byte) bool  { return charClass[c]&clName != 0 }

// scanTag scans one start, end or empty-element tag at pos. It returns
// errNeedMore if the tag is not complete in the buffer.
func (l *lexer) scanTag() error {
	b, end := l.buf, l.end
	p := l.pos + 1 // after '<'
	l.tagLine = l.line
	closing := false
	if p < end && b[p] == '/' {
		closing = true
		p++
	}
	// Name.
	ns := p
	if p < end && !isNameStart(b[p]) {
		return l.errorf(l.line, "malformed tag %q", snippet(b[l.pos:end]))
	}
	for p < end && isNameChar(b[p]) {
		p++
	}
	if p == end {
		return errNeedMore
	}
	name := b[ns:p]
	el, ok := lookupElement(name)
	if !ok {
		return l.errorf(l.line, "unknown element <%s>", snippet(name))
	}
	l.elem = el
	l.nattrs = 0
	if closing {
		for p < end && isSpace(b[p]) {
			if b[p] == '\n' {
				l.line++
			}
			p++
		}
		if p == end {
			return errNeedMore
		}
		if b[p] != '>' {
			return l.errorf(l.line, "malformed end tag </%s>", el)
		}
		l.kind = tokEnd
		l.pos = p + 1
		return nil
	}
	for {
		// Whitespace, then an attribute, '>' or "/>".
		sp := p
		for p < end && isSpace(b[p]) {
			if b[p] == '\n' {
				l.line++
			}
			p++
		}
		if p == end {
			return errNeedMore
		}
		switch b[p] {
		case '>':
			l.kind = tokStart
			l.pos = p + 1
			return nil
		case '/':
			if p+1 == end {
				return errNeedMore
			}
			if b[p+1] != '>' {
				return l.errorf(l.line, "malformed tag <%s>: '/' not followed by '>'", el)
			}
			l.kind = tokEmpty
			l.pos = p + 2
			return nil
		}
		if p == sp || !isNameStart(b[p]) {
			return l.errorf(l.line, "malformed attribute in <%s>", el)
		}
		as := p
		for p < end && isNameChar(b[p]) {
			p++
		}
		an := b[as:p]
		for p < end && isSpace(b[p]) {
			if b[p] == '\n' {
				l.line++
			}
			p++
		}
		if p == end {
			return errNeedMore
		}
		if b[p] != '=' {
			return l.errorf(l.line, "attribute %s of <%s> has no value", snippet(an), el)
		}
		p++
		for p < end && isSpace(b[p]) {
			if b[p] == '\n' {
				l.line++
			}
			p++
		}
		if p == end {
			return errNeedMore
		}
		q := b[p]
		if q != '"' && q != '\'' {
			return l.errorf(l.line, "value of attribute %s of <%s> is not quoted", snippet(an), el)
		}
		p++
		vs := p
		// One pass over the (short) value: its end, and what it must
		// not hold.
		for p < end && b[p] != q {
			switch b[p] {
			case '<':
				return l.errorf(l.line, "'<' in the value of attribute %s of <%s>", snippet(an), el)
			case '\n':
				l.line++
			}
			p++
		}
		if p == end {
			return errNeedMore
		}
		v := b[vs:p]
		p++
		if l.nattrs == maxAttrs {
			return l.errorf(l.tagLine, "too many attributes in <%s>", el)
		}
		l.attrs[l.nattrs] = attr{ns: int32(as), ne: int32(as + len(an)), vs: int32(vs), ve: int32(vs + len(v))}
		l.nattrs++
	}
}

// snippet returns the start of b for an error message.
func snippet(b []byte) string {
	const n = 40
	if i := bytes.IndexByte(b, '\n'); i >= 0 && i < n {
		b = b[:i]
	}
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
