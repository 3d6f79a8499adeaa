// Package files handles the files a user sends with a run: it checks their
// type and size, turns images into model images and documents into text
// with the knowledge readers, and keeps their bytes in a Store (on disk by
// default; an S3-compatible store can implement the same interface).
package files

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/troupehq/troupe/engine/knowledge/reader"
	"github.com/troupehq/troupe/engine/model"
)

// Default limits of a run's files.
const (
	DefaultMaxFileBytes = 5 << 20
	DefaultMaxRunBytes  = 8 << 20
	DefaultMaxFiles     = 10
	// DefaultMaxTextChars bounds the text of one document that reaches the
	// model, so one large PDF cannot fill the context window alone.
	DefaultMaxTextChars = 100_000
)

// Errors of Check, wrapped with what to do.
var (
	// ErrTooLarge is a file, or a run's files together, over the limits.
	ErrTooLarge = errors.New("file too large")
	// ErrUnsupported is a file whose type is neither an image a model can
	// see nor a document a knowledge reader reads.
	ErrUnsupported = errors.New("unsupported file type")
	// ErrUnreadable is a document of a supported type whose text cannot be
	// read (a scanned PDF, broken JSON).
	ErrUnreadable = errors.New("unreadable file")
)

// Limits bound the files of one run. Zero fields take the defaults.
type Limits struct {
	MaxFileBytes int64 // one file
	MaxRunBytes  int64 // all the files of a run together
	MaxFiles     int   // files in one run
	MaxTextChars int   // text of one document given to the model
}

func (l Limits) withDefaults() Limits {
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultMaxFileBytes
	}
	if l.MaxRunBytes <= 0 {
		l.MaxRunBytes = DefaultMaxRunBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	if l.MaxTextChars <= 0 {
		l.MaxTextChars = DefaultMaxTextChars
	}
	return l
}

// Upload is a file as a client sent it.
type Upload struct {
	Name string
	Data []byte
}

// File is a checked file: what is stored with the run and what the model
// gets (Image for images, Text for documents).
type File struct {
	Name      string
	MediaType string
	Size      int64
	SHA256    string
	Data      []byte
	Image     *model.Image
	Text      string
	// Key is where the bytes are kept in a Store, once they are.
	Key string
}

// imageTypes are the image media types vision models take (OpenAI and
// Anthropic alike).
var imageTypes = []string{"image/png", "image/jpeg", "image/gif", "image/webp"}

// documentTypes are the media types stored for the reader types.
var documentTypes = map[string]string{
	reader.Text:     "text/plain",
	reader.Markdown: "text/markdown",
	reader.HTML:     "text/html",
	reader.PDF:      "application/pdf",
	reader.CSV:      "text/csv",
	reader.JSON:     "application/json",
}

// Check checks a run's uploads against limits and prepares them for the
// model: images by their content (not their name), documents by the
// knowledge readers. Errors wrap ErrTooLarge, ErrUnsupported or
// ErrUnreadable and say what to do.
func Check(uploads []Upload, limits Limits) ([]File, error) {
	l := limits.withDefaults()
	if len(uploads) > l.MaxFiles {
		return nil, fmt.Errorf("%w: %d files, at most %d may be sent with one run; send fewer", ErrTooLarge, len(uploads), l.MaxFiles)
	}
	var total int64
	out := make([]File, 0, len(uploads))
	for _, u := range uploads {
		size := int64(len(u.Data))
		if size > l.MaxFileBytes {
			return nil, fmt.Errorf("%w: %q has %d bytes, the limit is %s per file; send a smaller file", ErrTooLarge, u.Name, size, human(l.MaxFileBytes))
		}
		if total += size; total > l.MaxRunBytes {
			return nil, fmt.Errorf("%w: the files add up to more than %s per run; send fewer or smaller files", ErrTooLarge, human(l.MaxRunBytes))
		}
		f, err := prepare(u, l)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func prepare(u Upload, l Limits) (File, error) {
	sum := sha256.Sum256(u.Data)
	f := File{Name: u.Name, Size: int64(len(u.Data)), SHA256: hex.EncodeToString(sum[:]), Data: u.Data}
	if mt := sniffImage(u.Data); mt != "" {
		f.MediaType = mt
		f.Image = &model.Image{MediaType: mt, Data: u.Data}
		return f, nil
	}
	typ, err := reader.Detect(u.Name, u.Data)
	if err != nil {
		return File{}, fmt.Errorf("%w: %q: %w; send a PNG, JPEG, GIF or WebP image or a %s document",
			ErrUnsupported, u.Name, err, strings.Join(reader.Supported, ", "))
	}
	sections, err := reader.Read(typ, u.Name, u.Data)
	if err != nil {
		return File{}, fmt.Errorf("%w: %q: %w", ErrUnreadable, u.Name, err)
	}
	var b strings.Builder
	for i, s := range sections {
		if i > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(s.Text)
	}
	text := b.String()
	if r := []rune(text); len(r) > l.MaxTextChars {
		text = string(r[:l.MaxTextChars]) + "\n[… the rest of the file was cut: it is longer than the limit]"
	}
	f.MediaType, f.Text = documentTypes[typ], text
	return f, nil
}

// sniffImage returns the media type of an image a vision model takes, or
// "" when data is not one.
func sniffImage(data []byte) string {
	if len(data) >= 12 && bytes.Equal(data[:4], []byte("RIFF")) && bytes.Equal(data[8:12], []byte("WEBP")) {
		return "image/webp"
	}
	mt := http.DetectContentType(data)
	for _, t := range imageTypes {
		if mt == t {
			return t
		}
	}
	return ""
}

// IsImage reports whether mediaType is one of the image types Check
// accepts, for pages that show images inline.
func IsImage(mediaType string) bool {
	for _, t := range imageTypes {
		if mediaType == t {
			return true
		}
	}
	return false
}

// Attach returns message with the documents among files appended, each as
// a delimited section the model can tell from the user's own words, and the
// images among files. Images are named in the text too, so a later turn,
// whose history has the text and not the images, knows one was sent.
func Attach(message string, files []File) (string, []model.Image) {
	if len(files) == 0 {
		return message, nil
	}
	var b strings.Builder
	b.WriteString(message)
	var images []model.Image
	for _, f := range files {
		if f.Image != nil {
			images = append(images, *f.Image)
			fmt.Fprintf(&b, "\n\n<attached_image name=%q type=%q/>", f.Name, f.MediaType)
			continue
		}
		fmt.Fprintf(&b, "\n\n<attached_file name=%q type=%q>\n%s\n</attached_file>", f.Name, f.MediaType, f.Text)
	}
	return b.String(), images
}

func human(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
