package main

import (
	"path/filepath"
	"testing"
	"fmt"
)

func TestZZScratch(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yml")
	files = append(files, "../../configs/wafcanary.yaml")
	for _, f := range files {
		c, err := loadConfig(f, nil)
		fmt.Printf("%s\n   %v\n", f, err)
		if err == nil { fmt.Printf("   %+v\n", c) }
	}
}
