// Package rdb reads the header of a Redis RDB file: its version and the AUX
// fields Redis writes before the first database, which include the
// replication ID and offset of the data set (repl-id, repl-offset). It never
// reads keys: the restart guard only needs to know how far the persisted data
// reaches in the replication stream.
//
// Facts from redis 7.0's src/rdb.c that this reader relies on:
//   - rdbSaveRio writes "REDIS%04d" (RDB_VERSION 10 in 7.0, 11 in 7.2), then
//     rdbSaveInfoAuxFields, then module AUX and functions, then the databases.
//   - rdbSaveInfoAuxFields writes redis-ver, redis-bits, ctime, used-mem, and
//     only when rdbPopulateSaveInfo returned an rsi: repl-stream-db, repl-id
//     (server.replid) and repl-offset (server.master_repl_offset); then aof-base.
//   - rdbPopulateSaveInfo returns an rsi for a master only when it has a
//     replication backlog (it is in a replication chain), and for a replica
//     when it has a master or a cached master. Otherwise the file carries no
//     replication position at all.
//   - Every AUX field is RDB_OPCODE_AUX (0xFA) followed by two strings saved
//     with rdbSaveRawString, which may use the integer encodings (values of
//     up to 11 characters that round-trip as an integer) or LZF (longer than
//     20 bytes with rdbcompression yes).
package rdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// opAux is RDB_OPCODE_AUX from redis's src/rdb.h; any other opcode
// (SELECTDB, MODULE_AUX, FUNCTION2, EOF, ...) ends the header.
const opAux = 0xFA

// maxString bounds a header string: AUX values are short (versions, numbers,
// a 40-character ID), so a huge length is a corrupt file, not a reason to
// allocate gigabytes.
const maxString = 1 << 20

// Header is what an RDB file says before its first key.
type Header struct {
	Version int
	// Aux holds every AUX field in file order; a repeated key keeps the last.
	Aux map[string]string
	// HasReplication is true when the file carries a usable replication
	// position: repl-id, repl-offset and a repl-stream-db other than -1, the
	// same test redis's loadDataFromDisk applies before restoring them.
	HasReplication bool
	ReplID         string
	ReplOffset     int64
}

// ErrNotRDB is returned for input that does not start with the RDB magic.
var ErrNotRDB = errors.New("rdb: not an RDB file (no REDIS magic)")

// ReadFile reads the header of the RDB file at path.
func ReadFile(path string) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, err
	}
	defer f.Close()
	h, err := ReadHeader(bufio.NewReader(f))
	if err != nil {
		return h, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// ReadHeader reads the magic and the AUX fields, and stops at the first other
// opcode (a database, a module's data, a function, or the end).
func ReadHeader(r io.Reader) (Header, error) {
	br, ok := r.(io.ByteReader)
	if !ok {
		b := bufio.NewReader(r)
		r, br = b, b
	}
	rd := &reader{r: r, br: br}
	var magic [9]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return Header{}, ErrNotRDB
	}
	if string(magic[:5]) != "REDIS" {
		return Header{}, ErrNotRDB
	}
	v, err := strconv.Atoi(string(magic[5:]))
	if err != nil || v < 1 {
		return Header{}, fmt.Errorf("rdb: bad version %q", magic[5:])
	}
	h := Header{Version: v, Aux: map[string]string{}}
	for {
		op, err := br.ReadByte()
		if err != nil {
			return h, fmt.Errorf("rdb: truncated header: %w", unexpected(err))
		}
		if op != opAux {
			break
		}
		k, err := rd.str()
		if err != nil {
			return h, fmt.Errorf("rdb: aux key: %w", err)
		}
		val, err := rd.str()
		if err != nil {
			return h, fmt.Errorf("rdb: aux %q: %w", k, err)
		}
		h.Aux[k] = val
	}
	id, hasID := h.Aux["repl-id"]
	off, errOff := strconv.ParseInt(h.Aux["repl-offset"], 10, 64)
	db := h.Aux["repl-stream-db"]
	if hasID && len(id) == 40 && errOff == nil && off >= 0 && db != "" && db != "-1" {
		h.HasReplication, h.ReplID, h.ReplOffset = true, id, off
	}
	return h, nil
}

type reader struct {
	r  io.Reader
	br io.ByteReader
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// length reads an RDB length; special is true for the 11xxxxxx encodings,
// whose low six bits are then returned as the encoding type.
func (rd *reader) length() (n uint64, special bool, err error) {
	b, err := rd.br.ReadByte()
	if err != nil {
		return 0, false, unexpected(err)
	}
	switch b >> 6 {
	case 0:
		return uint64(b & 0x3F), false, nil
	case 1:
		b2, err := rd.br.ReadByte()
		if err != nil {
			return 0, false, unexpected(err)
		}
		return uint64(b&0x3F)<<8 | uint64(b2), false, nil
	case 3:
		return uint64(b & 0x3F), true, nil
	}
	switch b {
	case 0x80:
		var buf [4]byte
		if _, err := io.ReadFull(rd.r, buf[:]); err != nil {
			return 0, false, unexpected(err)
		}
		return uint64(binary.BigEndian.Uint32(buf[:])), false, nil
	case 0x81:
		var buf [8]byte
		if _, err := io.ReadFull(rd.r, buf[:]); err != nil {
			return 0, false, unexpected(err)
		}
		return binary.BigEndian.Uint64(buf[:]), false, nil
	}
	return 0, false, fmt.Errorf("unknown length encoding 0x%02x", b)
}

// str reads one string in any of rdbSaveRawString's encodings.
func (rd *reader) str() (string, error) {
	n, special, err := rd.length()
	if err != nil {
		return "", err
	}
	if !special {
		return rd.raw(n)
	}
	switch n {
	case 0: // RDB_ENC_INT8
		var b [1]byte
		if _, err := io.ReadFull(rd.r, b[:]); err != nil {
			return "", unexpected(err)
		}
		return strconv.FormatInt(int64(int8(b[0])), 10), nil
	case 1: // RDB_ENC_INT16, little endian
		var b [2]byte
		if _, err := io.ReadFull(rd.r, b[:]); err != nil {
			return "", unexpected(err)
		}
		return strconv.FormatInt(int64(int16(binary.LittleEndian.Uint16(b[:]))), 10), nil
	case 2: // RDB_ENC_INT32, little endian
		var b [4]byte
		if _, err := io.ReadFull(rd.r, b[:]); err != nil {
			return "", unexpected(err)
		}
		return strconv.FormatInt(int64(int32(binary.LittleEndian.Uint32(b[:]))), 10), nil
	case 3: // RDB_ENC_LZF: compressed length, plain length, data
		clen, sp, err := rd.length()
		if err != nil || sp {
			return "", errors.Join(errors.New("bad LZF compressed length"), err)
		}
		ulen, sp, err := rd.length()
		if err != nil || sp {
			return "", errors.Join(errors.New("bad LZF length"), err)
		}
		if ulen > maxString {
			return "", fmt.Errorf("LZF string of %d bytes is too long for a header", ulen)
		}
		in, err := rd.raw(clen)
		if err != nil {
			return "", err
		}
		out, err := lzfDecompress([]byte(in), int(ulen))
		if err != nil {
			return "", err
		}
		return string(out), nil
	}
	return "", fmt.Errorf("unknown string encoding %d", n)
}

func (rd *reader) raw(n uint64) (string, error) {
	if n > maxString {
		return "", fmt.Errorf("string of %d bytes is too long for a header", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(rd.r, buf); err != nil {
		return "", unexpected(err)
	}
	return string(buf), nil
}

// lzfDecompress is liblzf's lzf_decompress (the CHECK_INPUT variant): a
// control byte below 32 starts a literal run of ctrl+1 bytes; otherwise its
// top three bits (7 meaning "read one more byte") plus 2 are a back
// reference's length and its low five bits with the next byte its distance.
func lzfDecompress(in []byte, outLen int) ([]byte, error) {
	out := make([]byte, 0, outLen)
	ip := 0
	for ip < len(in) {
		ctrl := int(in[ip])
		ip++
		if ctrl < 32 {
			ctrl++
			if len(out)+ctrl > outLen {
				return nil, errors.New("lzf: output overflow")
			}
			if ip+ctrl > len(in) {
				return nil, errors.New("lzf: truncated literal")
			}
			out = append(out, in[ip:ip+ctrl]...)
			ip += ctrl
			continue
		}
		length := ctrl >> 5
		if ip >= len(in) {
			return nil, errors.New("lzf: truncated back reference")
		}
		if length == 7 {
			length += int(in[ip])
			ip++
			if ip >= len(in) {
				return nil, errors.New("lzf: truncated back reference")
			}
		}
		ref := len(out) - ((ctrl & 0x1f) << 8) - 1 - int(in[ip])
		ip++
		length += 2
		if len(out)+length > outLen {
			return nil, errors.New("lzf: output overflow")
		}
		if ref < 0 {
			return nil, errors.New("lzf: back reference before the start")
		}
		// Byte by byte: the reference may overlap what it produces.
		for i := 0; i < length; i++ {
			out = append(out, out[ref+i])
		}
	}
	if len(out) != outLen {
		return nil, fmt.Errorf("lzf: %d bytes decompressed, want %d", len(out), outLen)
	}
	return out, nil
}
