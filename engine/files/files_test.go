package files_test

import (
	"bytes"
	"image"
	"image/png"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/files"
	"github.com/troupehq/troupe/engine/model"
)

func pngBytes(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1))))
	return b.Bytes()
}

func TestCheck(t *testing.T) {
	t.Parallel()
	pic := pngBytes(t)
	webp := append([]byte("RIFF\x10\x00\x00\x00WEBPVP8 "), make([]byte, 8)...)
	tests := []struct {
		name    string
		uploads []files.Upload
		limits  files.Limits
		want    []string // media types
		err     error
	}{
		{"png by content, whatever its name", []files.Upload{{Name: "x.txt", Data: pic}}, files.Limits{}, []string{"image/png"}, nil},
		{"webp", []files.Upload{{Name: "a.webp", Data: webp}}, files.Limits{}, []string{"image/webp"}, nil},
		{"markdown and text", []files.Upload{{Name: "a.md", Data: []byte("# A")}, {Name: "b", Data: []byte("b")}}, files.Limits{}, []string{"text/markdown", "text/plain"}, nil},
		{"file too large", []files.Upload{{Name: "a.txt", Data: []byte("abc")}}, files.Limits{MaxFileBytes: 2}, nil, files.ErrTooLarge},
		{"run too large", []files.Upload{{Name: "a", Data: []byte("ab")}, {Name: "b", Data: []byte("ab")}}, files.Limits{MaxRunBytes: 3}, nil, files.ErrTooLarge},
		{"too many", []files.Upload{{Name: "a", Data: []byte("a")}, {Name: "b", Data: []byte("b")}}, files.Limits{MaxFiles: 1}, nil, files.ErrTooLarge},
		{"binary", []files.Upload{{Name: "a.bin", Data: []byte{0x7f, 'E', 'L', 'F', 0, 0, 0}}}, files.Limits{}, nil, files.ErrUnsupported},
		{"pdf without text", []files.Upload{{Name: "a.pdf", Data: []byte("%PDF-1.4\n%%EOF\n")}}, files.Limits{}, nil, files.ErrUnreadable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := files.Check(tt.uploads, tt.limits)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			var types []string
			for _, f := range got {
				types = append(types, f.MediaType)
				require.Equal(t, f.Image != nil, files.IsImage(f.MediaType))
			}
			require.Equal(t, tt.want, types)
		})
	}
}

func TestCheckCutsLongText(t *testing.T) {
	t.Parallel()
	got, err := files.Check([]files.Upload{{Name: "a.txt", Data: []byte(strings.Repeat("é", 20))}}, files.Limits{MaxTextChars: 5})
	require.NoError(t, err)
	require.Equal(t, "ééééé\n[… the rest of the file was cut: it is longer than the limit]", got[0].Text)
}

func TestAttach(t *testing.T) {
	t.Parallel()
	img := &model.Image{MediaType: "image/png", Data: []byte{1}}
	msg, images := files.Attach("hi", []files.File{{Name: "a.png", MediaType: "image/png", Image: img}, {Name: "b.md", MediaType: "text/markdown", Text: "# B"}})
	require.Equal(t, "hi\n\n<attached_image name=\"a.png\" type=\"image/png\"/>\n\n<attached_file name=\"b.md\" type=\"text/markdown\">\n# B\n</attached_file>", msg)
	require.Equal(t, []model.Image{*img}, images)
	msg, images = files.Attach("hi", nil)
	require.Equal(t, "hi", msg)
	require.Nil(t, images)
}

func TestDisk(t *testing.T) {
	t.Parallel()
	d, err := files.NewDisk(t.TempDir())
	require.NoError(t, err)
	ctx := t.Context()
	key := files.NewKey()
	require.NoError(t, d.Put(ctx, key, []byte("bytes")))
	r, err := d.Get(ctx, key)
	require.NoError(t, err)
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.Equal(t, "bytes", string(b))
	require.NoError(t, d.Delete(ctx, key))
	require.NoError(t, d.Delete(ctx, key), "deleting twice is fine")
	_, err = d.Get(ctx, key)
	require.ErrorIs(t, err, files.ErrNotFound)
	for _, bad := range []string{"../etc/passwd", "ab/../../x", "/abs/olute12", ""} {
		require.Error(t, d.Put(ctx, bad, nil), bad)
	}
}
