package main

import (
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/kafkaconn"
)

// kafkaSecurityFlags are the Kafka TLS and SASL flags of `sluice run` and
// `sluice verify`, for managed Kafka (MSK, Confluent Cloud, Redpanda
// Cloud). `sluice dev` has none: it talks to its own embedded plaintext
// broker.
type kafkaSecurityFlags struct {
	settings kafkaconn.Settings
}

// kafkaPasswordFlag is the secret's name: --kafka-sasl-password-file, and
// --kafka-sasl-password (SLUICE_KAFKA_SASL_PASSWORD) for those who must.
const kafkaPasswordFlag = "kafka-sasl-password"

func (k *kafkaSecurityFlags) register(f *pflag.FlagSet) {
	s := &k.settings
	f.BoolVar(&s.TLS, "kafka-tls", false, "connect to Kafka over TLS, trusting the system's CAs (or --kafka-tls-ca)")
	f.StringVar(&s.Files.CA, "kafka-tls-ca", "", "PEM file of the CAs to trust for the Kafka brokers instead of the system's; implies --kafka-tls")
	f.StringVar(&s.Files.Cert, "kafka-tls-cert", "", "PEM client certificate, for brokers that require one (mutual TLS), with --kafka-tls-key; implies --kafka-tls")
	f.StringVar(&s.Files.Key, "kafka-tls-key", "", "PEM private key of --kafka-tls-cert")
	f.StringVar(&s.Mechanism, "kafka-sasl-mechanism", "", "Kafka SASL mechanism: plain, scram-sha-256 or scram-sha-512 (empty: no SASL)")
	f.StringVar(&s.Username, "kafka-sasl-username", "", "Kafka SASL user name")
	registerSecret(f, kafkaPasswordFlag, "Kafka SASL password")
}

// security reads the password and the TLS files and returns what every
// Kafka connection uses. Errors name the flag; none shows the password.
func (k *kafkaSecurityFlags) security(f *pflag.FlagSet, log *slog.Logger) (kafkaconn.Security, error) {
	s := k.settings
	pw, err := secretValue(f, kafkaPasswordFlag, log)
	if err != nil {
		return kafkaconn.Security{}, err
	}
	s.Password = pw
	sec, err := s.Security()
	if err != nil {
		return kafkaconn.Security{}, err
	}
	if sec.Mechanism() == "PLAIN" && !sec.TLS() {
		log.Warn("Kafka SASL PLAIN without TLS sends the password readable by anyone on the network: add --kafka-tls",
			"flag", "--kafka-sasl-mechanism")
	}
	return sec, nil
}
