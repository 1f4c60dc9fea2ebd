module Adder.Tests.CliTests

open Xunit
