//go:build !unix

package oauth

import (
	"fmt"
	"os"
)

// lockDir opens path; without flock, nothing stops a second process.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("oauth: %w", err)
	}
	return f, nil
}
