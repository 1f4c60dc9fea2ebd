module Adder.Tests.ForwardTests

open Xunit
