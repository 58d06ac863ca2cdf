package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/admin"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make credentials for the admin API's users (admin.users)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newTokenNewCmd())
	return cmd
}

func newTokenNewCmd() *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:   "new NAME [--role ROLE]",
		Short: "Print a fresh token for NAME and the admin.users entry that holds its hash",
		Long: `token new prints a fresh random bearer token for NAME, and the admin.users
entry to add to the server's configuration: it holds the token's SHA-256,
not the token, so the configuration holds no secret. Give the token to NAME
alone (WAFCANARY_ADMIN_TOKEN, or a file for --token-file); it is not kept
anywhere. Roles: viewer, operator, approver, admin (README: "Users, roles,
four-eyes and tickets").`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			token, err := admin.NewToken()
			if err != nil {
				return err
			}
			return printNewToken(cmd.OutOrStdout(), args[0], admin.Role(role), token)
		},
	}
	cmd.Flags().StringVar(&role, "role", string(admin.Operator), "viewer, operator, approver or admin")
	return cmd
}

// printNewToken checks the entry as the server would, then prints the
// token and its admin.users entry.
func printNewToken(out io.Writer, name string, role admin.Role, token string) error {
	u := admin.User{Name: name, Role: role, TokenSHA256: admin.HashToken(token)}
	cfg := admin.DefaultConfig
	cfg.Users = []admin.User{u}
	if err := cfg.Validate(); err != nil {
		return errUsage{fmt.Errorf("admin.%w", err)}
	}
	_, err := fmt.Fprintf(out, `token for %s (give it to %s alone; it is kept nowhere):

  %s

add to admin.users in the server's configuration (the hash, no secret):

  - {name: %s, role: %s, token_sha256: %s}
`, name, name, token, name, role, u.TokenSHA256)
	return err
}
