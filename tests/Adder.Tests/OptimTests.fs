module Adder.Tests.OptimTests

open Xunit
