module Adder.Tests.CheckpointTests

open Xunit
