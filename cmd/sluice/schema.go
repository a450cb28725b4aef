package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/sinks/clickhouse"
)

// newSchemaCmd is `sluice schema`: what the stream definitions make of
// ClickHouse, without a server.
func newSchemaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Show what a stream's schema makes in ClickHouse",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newSchemaDDLCmd())
	return cmd
}

func newSchemaDDLCmd() *cobra.Command {
	var (
		schemasDir, database, version, partition, ttl string
	)
	cmd := &cobra.Command{
		Use:   "ddl [STREAM...]",
		Short: "Print the CREATE TABLE statements of streams for a ClickHouse version",
		Long: `Print the CREATE TABLE statements Sluice runs for the given streams (all
when none is named) on a ClickHouse server of --server-version. Servers from
22.8 get modern types (DateTime64, Map, LowCardinality, codecs, skip indexes,
TTL); older ones (Debian's 18.16) get types that work there. The statements
are what 'sluice run' creates when a table is missing; nothing is sent
anywhere.`,
		Example: `  sluice schema ddl iot_telemetry --server-version 18.16
  sluice schema ddl --server-version 25.3 --clickhouse-partition day --clickhouse-ttl 90d
  sluice schema ddl machine_state --schemas ./schemas`,
		RunE: func(cmd *cobra.Command, names []string) error {
			v, err := clickhouse.ParseVersion(version)
			if err != nil {
				return fmt.Errorf("--server-version: %w", err)
			}
			opts, err := tableOptions(partition, ttl)
			if err != nil {
				return err
			}
			streams, err := selectStreams(schemasDir, names)
			if err != nil {
				return err
			}
			for _, st := range streams {
				for _, stmt := range clickhouse.DDL(database, st, v, opts) {
					fmt.Fprintf(cmd.OutOrStdout(), "%s;\n\n", stmt)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&schemasDir, "schemas", "", "directory of stream definitions (*.yaml) replacing the built-in ones, as given to dev and run")
	f.StringVar(&database, "clickhouse-database", clickhouse.DefaultDatabase, "database the tables are in")
	f.StringVar(&version, "server-version", "18.16", "ClickHouse server version the statements are for (major.minor)")
	f.StringVar(&partition, "clickhouse-partition", clickhouse.PartitionMonth, "time partitions of new tables: month or day")
	f.StringVar(&ttl, "clickhouse-ttl", "", "drop stored data older than this (e.g. 90d; empty: keep everything)")
	return cmd
}

// tableOptions reads --clickhouse-partition and --clickhouse-ttl.
func tableOptions(partition, ttl string) (clickhouse.TableOptions, error) {
	o := clickhouse.TableOptions{Partition: partition}
	if ttl != "" {
		d, err := clickhouse.ParseTTL(ttl)
		if err != nil {
			return o, fmt.Errorf("--clickhouse-ttl: %w", err)
		}
		o.TTL = d
	}
	if err := o.Validate(); err != nil {
		return o, fmt.Errorf("--clickhouse-partition/--clickhouse-ttl: %w", err)
	}
	return o, nil
}
